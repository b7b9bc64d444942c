"""Events written as text, for LLM methods: the user's recent history and the task's question."""

from __future__ import annotations

import numpy as np

from bench.data.dataset import Dataset
from bench.data.windows import Examples

HEADER = "User history, oldest first:\n"
QUESTIONS = {
    "next_item": "Which item will the user interact with next? Answer with its title.\nAnswer:",
    "fav_category": "Which category appears most often in the user's history?\nAnswer:",
    "review_gen": "Write the user's review of {item}, which they rated {rating}.\nReview:",
}


class PromptWriter:
    """The prompts of one dataset and task: the ``events`` most recent events of each example, one line
    each, e.g. "Toy Story (1995) (Animation, Children's, Comedy) rated 4" (oldest first), then the task's
    question (for review_gen it names the next item and its rating). Item texts are written once; a
    batch's prompts are assembled a column of events at a time, never example by example."""

    def __init__(self, dataset: Dataset, task: str, events: int) -> None:
        items = dataset.items
        self.task, self.events = task, events
        self.item_text = np.array([f"{title} ({', '.join(categories)})"
                                   for title, categories in zip(items["title"], items["categories"])], dtype=object)

    @staticmethod
    def _ratings(dataset: Dataset, positions: np.ndarray) -> np.ndarray:
        values, inverse = np.unique(dataset.rating[positions], return_inverse=True)
        return np.array([f"{value:g}" for value in values], dtype=object)[inverse].reshape(positions.shape)

    def question(self, dataset: Dataset, label_positions: np.ndarray) -> np.ndarray:
        """The task's question for each label event [b] (object array of str)."""
        if self.task != "review_gen":
            return np.full(len(label_positions), QUESTIONS[self.task], dtype=object)
        before, after = QUESTIONS["review_gen"].split("{item}")
        rating, end = after.split("{rating}")
        return (before + self.item_text[dataset.item[label_positions]] + rating
                + self._ratings(dataset, label_positions) + end)

    def __call__(self, dataset: Dataset, examples: Examples, index: np.ndarray) -> list[str]:
        """The prompts of ``examples[index]``, read from ``dataset`` (the view the caller was handed)."""
        prompts = self.question(dataset, examples.label_positions[index])
        if self.events:
            positions = examples.positions(index)[:, -self.events:]
            lines = self.item_text[dataset.item[positions]] + " rated " + self._ratings(dataset, positions) + "\n"
            prompts = HEADER + np.add.reduce(lines, axis=1) + prompts
        return prompts.tolist()


def answer_texts(dataset: Dataset, task: str, labels: np.ndarray) -> list[str]:
    """The target answer of each example, as the LLM should write it."""
    if task == "next_item":
        return dataset.items["title"].to_numpy()[labels].tolist()
    if task == "fav_category":
        return np.asarray(dataset.categories, dtype=object)[labels].tolist()
    return [str(text) for text in labels]
