"""CMRAssist server side: cardiac preprocessing, models, training, data import and the MONAI Label app's parts."""
