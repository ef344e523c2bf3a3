"""Moving a shift into the engines people already run, and checking that it arrived.

- :mod:`~cmrm.export.control_vector`: a llama.cpp control vector (GGUF);
- :mod:`~cmrm.export.bias`: a ``save_pretrained`` checkpoint with the shift baked in as
  ``down_proj`` biases (Llama text decoders only, where that is exact);
- :mod:`~cmrm.export.endpoint`: ``check_endpoint``, whether an OpenAI-compatible endpoint behaves
  like the steered or the unsteered model.
"""

from .bias import EXACT_FAMILIES, bake_bias, bias_refusal, export_hf_bias
from .control_vector import ControlVectorFile, llama_cpp_commands, write_control_vector

__all__ = [
    "EXACT_FAMILIES",
    "ControlVectorFile",
    "bake_bias",
    "bias_refusal",
    "export_hf_bias",
    "llama_cpp_commands",
    "write_control_vector",
]
