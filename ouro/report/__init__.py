"""The comparative report (`ouro report`): runs discovered under outputs/, their tables,
figures and fits, written as Markdown."""
