"""ShareGPT-4o-Image recipes as generator plugins (arXiv 2506.18095): prompt-first text-to-image,
image-first pairs, text-rich documents, and edit triplets. Importing the package registers them."""
from generators.sharegpt4o import attributes, documents, edits, image_first, prompt_first  # noqa: F401 - registers the plugins
