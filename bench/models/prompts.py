"""Events written as text, for LLM methods: the user's recent history and the task's question."""

from __future__ import annotations

import numpy as np

from bench.data.dataset import Dataset
from bench.data.windows import Examples
from bench.tasks import Task, rating_texts

HEADER = "User history, oldest first:\n"


class PromptWriter:
    """The prompts of one dataset and task: the ``events`` most recent events of each example, one line
    each, e.g. "Toy Story (1995) (Animation, Children's, Comedy) rated 4" (oldest first), then the task's
    question (``Task.questions``; for review_gen it names the next item and its rating). Item texts are
    written once; a batch's prompts are assembled a column of events at a time, never example by example."""

    def __init__(self, dataset: Dataset, task: Task, events: int) -> None:
        items = dataset.items
        self.task, self.events = task, events
        self.item_text = np.array([f"{title} ({', '.join(categories)})"
                                   for title, categories in zip(items["title"], items["categories"])], dtype=object)

    def __call__(self, dataset: Dataset, examples: Examples, index: np.ndarray) -> list[str]:
        """The prompts of ``examples[index]``, read from ``dataset`` (the view the caller was handed)."""
        prompts = self.task.questions(dataset, examples.label_positions[index], self.item_text)
        if self.events:
            positions = examples.positions(index)[:, -self.events:]
            lines = self.item_text[dataset.item[positions]] + " rated " + rating_texts(dataset, positions) + "\n"
            prompts = HEADER + np.add.reduce(lines, axis=1) + prompts
        return prompts.tolist()
