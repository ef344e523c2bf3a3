"""The bundled model organisms, each a provider behind the registries: ``toy`` (registered as
``organism``, a 0.8M-parameter LLaVA trained on synthetic data: the negative control) and
``smol`` (registered as ``organism-smol``, SmolLM2-135M-Instruct safety-tuned on text and given
eyes). Each supplies a loader (:data:`cmrm.models.registry.MODELS`), suites
(:data:`cmrm.data.registry.BENCHMARKS`) and a judge (:data:`cmrm.judges.registry.JUDGES`), all
named by strings, so the library imports an organism only when one is used.

May import: ``base``, ``data``, ``models``, ``judges`` (and, for training, ``calibration`` through
``generation``). Only ``demo`` and ``cli`` import an organism.
"""
