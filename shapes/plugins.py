"""The shapes world's plugins: procedural models and judges, GenEval's ``shapes`` prompt set, the
``eval`` pipeline stage and ``harness shapes-data``."""
from shapes import (answerer_model, commands, detector, edit_judge, editor_model, eval_stage,  # noqa: F401
                    prompts, renderer_model, vqa_judge)
from shapes import complex_edit_judge, gedit_judge  # noqa: F401
