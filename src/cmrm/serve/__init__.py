"""``cmrm serve``: an OpenAI-compatible server over cmrm's batched, steered generation.

Importing this package is cheap; the FastAPI application is built by :func:`create_app`
(``cmrm.serve.app``) and run by ``cmrm.serve.server``.
"""

from .config import ImagePolicy, Limits, OverridePolicy, ServedIntervention, ServerConfig

__all__ = ["ImagePolicy", "Limits", "OverridePolicy", "ServedIntervention", "ServerConfig"]
