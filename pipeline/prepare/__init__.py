"""Benchmarks from their official downloads: the ``prepare`` Beam job and one module per raw format.

``ade847`` (ADE20K_2021_17_01: index pickle, R/G-encoded ``*_seg.png``), ``pascal_context``
(VOC2010 + the PASCAL-Context annotations: Detail JSON for PC-59, ``.mat`` label maps for
PC-459), ``voc`` (VOC2012 ``SegmentationClass``) and ``in_place`` (ADE20K-150 and COCO-Stuff,
already in the layout the readers take: validated only) each list their inputs as
:class:`pipeline.prepare.records.Item` and turn one item into a prepared pair or a reject;
``job`` runs them on a Beam runner, reconciles and verifies (``verify``).
"""
