"""Stage 0, foundations: errors, atomic writes, lazy exports, the generic registry, shared value
checks, ``KEY=VALUE`` options and the distributed helpers.

Owns nothing of the data flow itself. May import: nothing else of cmrm (only the standard
library, and torch where a helper needs it). Every other stage may import it.
"""
