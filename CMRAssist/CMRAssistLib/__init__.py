"""CMRAssist library code that never imports ``slicer`` or ``torch`` (runs on Python 3.9-3.12)."""
