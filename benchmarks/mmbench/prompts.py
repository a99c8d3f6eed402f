"""MMBench prompt texts: the question as the model sees it, and the choice-extractor judge prompt.

Inference styles (PROTOCOLS.md 5.2; the image always comes first, the adapter places it):

- ``vlmevalkit``: ``ImageMCQDataset.build_prompt`` of open-compass/VLMEvalKit (e8e78f0). Options are
  every letter column whose cell is not missing, each on its own line; the closing sentence keeps
  upstream's space before the newline.
- ``llava``: ``llava/eval/model_vqa_mmbench.py`` of haotian-liu/LLaVA (c121f04) with
  ``--single-pred-prompt``. Options are read from A to D and stop at the first missing one (so a
  gap hides the options after it, as upstream); LLaVA also treats the strings "nan"/"none" in any
  case as missing. The Chinese suffix is LLaVA's ``--lang cn``.

The judge prompt is VLMEvalKit's ``build_prompt`` / ``build_prompt_cn`` (``multiple_choice.py``):
the same text, assembled here, including upstream's typo ("Your should output"), its ``?`` after
every question (even one that already ends with "?") and the ``There are several options:`` list
of ``build_option_str``. Chinese questions (any CJK unified ideograph) get the Chinese prompt.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

PROMPT_STYLES = ("vlmevalkit", "llava")
LANGS = ("auto", "en", "cn")
VLMEVALKIT_INSTRUCTION = "Please select the correct answer from the options above. \n"
LLAVA_SUFFIX = {"en": "Answer with the option's letter from the given choices directly.",
                "cn": "请直接回答选项字母。"}
LLAVA_LETTERS = ("A", "B", "C", "D")

_CJK = re.compile("[\u4e00-\u9fff]")


def is_chinese(text: str) -> bool:
    """VLMEvalKit's ``cn_string``: any CJK unified ideograph."""
    return bool(_CJK.search(text))


def vlmevalkit_prompt(question: str, hint: str | None, options: Mapping[str, str]) -> str:
    text = f"Hint: {hint}\n" if hint is not None else ""
    text += f"Question: {question}\n"
    if options:
        text += "Options:\n" + "".join(f"{letter}. {option}\n" for letter, option in options.items())
        text += VLMEVALKIT_INSTRUCTION
    return text


def llava_is_missing(value: str | None) -> bool:
    return value is None or value.lower() in ("nan", "none")


def llava_options(cells: Mapping[str, str | None]) -> list[str]:
    """Option texts from A to D up to the first missing one (LLaVA's ``get_options``)."""
    options = []
    for letter in LLAVA_LETTERS:
        value = cells.get(letter)
        if llava_is_missing(value):
            break
        options.append(value)
    return options


def llava_prompt(question: str, hint: str | None, options: Sequence[str], lang: str) -> str:
    """``lang``: "en", "cn", or "auto" (Chinese suffix when the question has Chinese characters)."""
    if lang == "auto":
        lang = "cn" if is_chinese(question) else "en"
    text = question if llava_is_missing(hint) else f"{hint}\n{question}"
    for letter, option in zip(LLAVA_LETTERS, options):
        text += f"\n{letter}. {option}"
    return f"{text}\n{LLAVA_SUFFIX[lang]}"


def _option_list(options: Mapping[str, str]) -> str:
    return "There are several options: \n" + "".join(f"{letter}. {text}\n" for letter, text in options.items())


_EN_EXAMPLE_QUESTION = ("Question: What is the main object in image?\n"
                        "Options: A. teddy bear B. rabbit C. cat D. dog\n")
_EN_JUDGE = (
    "You are an AI assistant who will help me to match an answer with several options of a "
    "single-choice question. You are provided with a question, several options, and an answer, "
    "and you need to find which option is most similar to the answer. If the meaning of all "
    "options are significantly different from the answer, output Z. Your should output a single "
    "uppercase character in A, B, C, D (if they are valid options), and Z. \n"
    "Example 1: \n" + _EN_EXAMPLE_QUESTION + "Answer: a cute teddy bear\nYour output: A\n"
    "Example 2: \n" + _EN_EXAMPLE_QUESTION + "Answer: Spider\nYour output: Z\n"
    "Example 3: \n"
)
_CN_EXAMPLE_QUESTION = "问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n"
_CN_JUDGE = (
    "你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。"
    "你会被提供：一个问题，多个选项，一个答案。你的任务是找到与答案意义最相近的选项。"
    "如果所有选项的意义都与答案显著不同，则输出 Z。"
    "你应该输出一个单个的大写字母，例如 A, B, C, D（如果它们是有效选项），或 Z。"
    "例 1:" + _CN_EXAMPLE_QUESTION + "答案: 一只可爱的泰迪熊\n输出: A\n"
    "例 2: \n" + _CN_EXAMPLE_QUESTION + "答案: 蜘蛛\n输出: Z\n"
    "例 3: \n"
)


def judge_prompt(question: str, options: Mapping[str, str], prediction: str) -> str:
    """The choice extractor's prompt for one answer (English or Chinese by the question)."""
    listed = _option_list(options)
    if is_chinese(question):
        return f"{_CN_JUDGE}问题: {question}?\n选项: {listed}\n答案: {prediction}\n输出: "
    return f"{_EN_JUDGE}Question: {question}?\nOptions: {listed}\nAnswer: {prediction}\nYour output: "
