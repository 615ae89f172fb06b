"""The artifact store: adapters, loss plots, checkpoints and registered base weights, kept by
content hash where every host reaches them (the store's database by default, an S3-compatible
bucket optionally), with a local cache under each host's GPTSTORE_HOME.

`refs.py` names artifacts (`artifact:<sha256>[/path]`), `blobs.py` holds the bytes (database
rows in chunks, or S3), `store.py` (`ArtifactStore`) turns folders into trees and back.
May import: top-level engine modules and `storage`.
"""
