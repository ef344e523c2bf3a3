"""Stage 3, calibration: from anchors to the :class:`~cmrm.calibration.shift.ShiftVectors`
artefact — capture of hidden states (:mod:`.capture`), the image contrast (:mod:`.contrast`),
the estimators (:mod:`.estimate`, independent; :mod:`.sequential`, each layer measured with the
earlier ones shifted), their cross-rank reduction (:mod:`.reduction`), the safety axes
(:mod:`.axes`) and the artefact on disk (:mod:`.shift`).

May import: ``base``, ``data``, ``models``. Never ``interventions`` or anything above: sequential
calibration adds the shift itself, layer by layer, rather than through :func:`cmrm.steer`.
"""
