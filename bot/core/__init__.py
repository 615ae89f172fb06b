"""The command language every adapter shares: parsing text into a Command, the handlers (one per
command, returning a Reply), the dispatcher that validates and never raises, help, cards,
job-progress following, shared text (splitting, the went-wrong reply) and growing answers.

May import: engine. Never a platform library: Slack, Discord and the console all run this.
"""
