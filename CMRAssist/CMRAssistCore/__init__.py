"""What the Slicer module and the server share: the label convention, clinical measures, the progress protocol.

Imports nothing beyond the standard library, numpy and SimpleITK (a test checks it): the server reaches the
extension's code through this package only, and Slicer ships it with the module.
"""
