"""Well-behaved test plugin: serves in-memory files (see memfiles_core)."""

import memfiles_core

memfiles_core.export(globals(), memfiles_core.MemFiles)
