"""The pieces of the mining job (:mod:`pipeline.mining.job`), each testable without Beam.

* :mod:`.job`: the Beam job itself (nouns + images → pairs and rejects, reconciled);
* :mod:`.config`: the job's thresholds and filters, validated;
* :mod:`.image_io`: reading image bytes through Beam's FileSystems, decoding and validating them;
* :mod:`.regions`: proposer outputs → the usable regions of one image (threshold, area, score, mask NMS);
* :mod:`.matching`: the [nouns × regions] similarity → each noun's best region, softmax, margin, filters;
* :mod:`.models`: the proposer and CLIP, loaded once per worker process;
* :mod:`.miner`: decoded images and their nouns → pair rows or a reject reason (models, no Beam);
* :mod:`.accounting`: which image or caption is rejected for what, before and after mining;
* :mod:`.dofn`: the Beam DoFn that runs all of it on a group of images;
* :mod:`.quality`: precision and class recall of mined pairs against the demo world's truth (``ovseg mine-quality``);
* :mod:`.proposal_export`: a proposer's masks for a folder of images as Parquet (``ovseg propose``).
"""
