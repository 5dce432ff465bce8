"""The study report (clinical measures, indexed by body surface area, QC summary, normal ranges; JSON, CSV, PDF,
HTML, PNG) and the clinical-data commands that join DICOM (``io.dicom``) with the served models: ``import-dicom``
(ED/ES from the segmentation model), ``export-seg`` and ``report``."""
