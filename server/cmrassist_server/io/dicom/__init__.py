"""DICOM in and out for short-axis cine: frame headers (classic and enhanced MR), cine stacks sorted by slice
position and cardiac phase, the importer into a studies folder, DICOM SEG, the DICOMweb (PACS) datastore, and a
writer of realistic cine series (tests, benchmarks)."""
