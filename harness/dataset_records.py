"""The records of the two JSON dataset layouts, made from a recipe's rows (``harness.dataset_formats``
writes them, ``harness.dataset_parquet`` embeds the same records)."""
from __future__ import annotations

SHAREGPT4O_FILE = "sharegpt4o.json"
LLAVA_FILE = "llava.json"
#: the question a caption gets when its row names none
DEFAULT_CAPTION_QUESTION = "Describe this image in detail."


def sharegpt4o_record(row: dict) -> dict:
    record = {"id": row["id"], "input_prompt": row["input_prompt"], "output_image": row["output_image"]}
    if row.get("input_image"):
        record["input_image"] = list(row["input_image"])
    return record


def llava_record(row: dict) -> dict:
    question = row.get("question") or DEFAULT_CAPTION_QUESTION
    return {"id": row["id"], "image": row["image"],
            "conversations": [{"from": "human", "value": f"<image>\n{question}"},
                              {"from": "gpt", "value": row["caption"]}]}
