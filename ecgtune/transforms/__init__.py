"""Transforms of examples: resampling (SMOTE), spectrograms, input layouts, augmentations."""

# The augmentations of training batches (ecgtune.transforms.augment), in the order they are applied;
# here so that reading a search space does not import torch.
AUGMENTATIONS = ("cutout", "drop", "random_resample", "resample", "scale", "shift", "sine", "band_pass")
# The layout of inputs made once at preparation (images, neighbouring beats): augmentations never remake
# them (ecgtune.transforms.layouts; Examples.layout).
FIXED = "fixed"
