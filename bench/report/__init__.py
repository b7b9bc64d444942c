"""Reports: a summary of any suite's results, the paper's tables with its numbers beside ours, plots."""
