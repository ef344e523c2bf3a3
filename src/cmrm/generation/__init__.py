"""Stage 5, generation: answers from a VLM under a method — batching by length with ``auto``
sizes (:mod:`.batching`), greedy generation of items under an intervention (:mod:`.generate`),
the baselines that change the input instead (:mod:`.baselines`) and the method that joins both
(:mod:`.methods`). Produces the answer texts that the judges read.

May import: ``base``, ``data``, ``models``, ``calibration``, ``interventions``.
"""
