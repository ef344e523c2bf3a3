"""cmrm: Cross-Modality Representation Manipulation for vision-language models."""
