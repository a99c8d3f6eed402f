"""Shared test setup: never touch the network; small helpers used by several test files."""
import os

# set before transformers / huggingface_hub are imported anywhere
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
