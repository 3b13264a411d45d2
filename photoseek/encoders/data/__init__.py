"""Caption datasets: records, on-disk formats, synthetic scenes. Needs neither Ray nor torch."""

from photoseek.encoders.data.records import CaptionedImage, CaptionSet, DatasetError

__all__ = ["CaptionedImage", "CaptionSet", "DatasetError"]
