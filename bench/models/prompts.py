"""Events written as text, for LLM methods: the user's recent history and the task's question."""

from __future__ import annotations

import numpy as np

from bench.data.dataset import Dataset
from bench.data.windows import Examples

QUESTIONS = {
    "next_item": "Which item will the user interact with next? Answer with its title.\nAnswer:",
    "fav_category": "Which category appears most often in the user's history?\nAnswer:",
    "review_gen": "Write the user's review of {title} ({categories}), which they rated {rating:g}.\nReview:",
}


def event_line(dataset: Dataset, position: int) -> str:
    """One event, e.g. "Toy Story (1995) (Animation, Children's, Comedy) rated 4"."""
    item = dataset.item[position]
    categories = ", ".join(dataset.items["categories"].iat[item])
    return f"{dataset.items['title'].iat[item]} ({categories}) rated {dataset.rating[position]:g}"


def history_prompt(dataset: Dataset, examples: Examples, index: int, task: str, events: int) -> str:
    """The ``events`` most recent events of example ``index`` as text, then the task's question."""
    start, label = int(examples.starts[index]), int(examples.label_positions[index])
    lines = [event_line(dataset, p) for p in range(max(start, label - events), label)]
    body = "User history, oldest first:\n" + "\n".join(lines) + "\n" if lines else ""
    return body + task_question(dataset, label, task)


def task_question(dataset: Dataset, label_position: int, task: str) -> str:
    """The question; for review_gen it names the next item's title, categories and rating."""
    if task != "review_gen":
        return QUESTIONS[task]
    item = dataset.item[label_position]
    return QUESTIONS[task].format(title=dataset.items["title"].iat[item],
                                  categories=", ".join(dataset.items["categories"].iat[item]),
                                  rating=float(dataset.rating[label_position]))


def answer_texts(dataset: Dataset, task: str, labels: np.ndarray) -> list[str]:
    """The target answer of each example, as the LLM should write it."""
    if task == "next_item":
        return [dataset.items["title"].iat[i] for i in labels]
    if task == "fav_category":
        return [dataset.categories[i] for i in labels]
    return [str(text) for text in labels]
