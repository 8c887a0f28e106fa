"""Measuring: crop accuracy, proposal quality, segmentation mIoU, variants, the report and its pictures."""
