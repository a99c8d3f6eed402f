"""VQA judges that serve DPG-Bench alone. ``mplug`` (``mplug.py``, our PyTorch implementation of the
official modelscope mPLUG-large pipeline) is registered through its own ``harness.plugins`` entry
point; this package file stays light, so the benchmark can name its official judge without loading
torch models."""

#: the judge whose answers match the official DPG-Bench judge (mPLUG-large through modelscope)
OFFICIAL_VQA_JUDGE = "mplug"
