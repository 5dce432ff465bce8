"""The models CMRAssist ships: the one recipe that makes them from ACDC (``cmrassist train-release``), their
model cards and checksums, and installing them into an empty model folder when a server starts.
"""
