"""The catalog: store entries (base and tuned models), their versions, visibility,
deployments and search (service.py), and the rules for names, folders and permissions
(rules.py).

May import: engine's top-level modules and storage.
"""
