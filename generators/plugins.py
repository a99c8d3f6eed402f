"""The data-recipe plugins: sources, steps and filters."""
from generators import (filters, gpt_image_edit, image_steps, sharegpt4o, sharegpt4v, shapes,  # noqa: F401
                        sources)
