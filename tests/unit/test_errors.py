"""A user mistake is one line, also when it happens inside a DataLoader worker (torch re-raises it there with the
worker's whole traceback as its message)."""

from __future__ import annotations

import pytest
from torch.utils.data import DataLoader, Dataset

from mobivision.commands.cli import exit_code
from mobivision.data.records import UnreadableImageError
from mobivision.errors import DataError, user_message

MESSAGE = "cannot read image /data/train/0042.jpg: cannot identify image file"


class _Unreadable(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        raise UnreadableImageError(MESSAGE)


def _first_batch_from_a_worker() -> None:
    next(iter(DataLoader(_Unreadable(), num_workers=1)))


def test_an_error_from_a_dataloader_worker_is_its_own_message_again() -> None:
    with pytest.raises(UnreadableImageError) as caught:
        _first_batch_from_a_worker()
    assert "Original Traceback" in str(caught.value)  # what torch makes of it
    assert user_message(caught.value) == MESSAGE


def test_exit_code_prints_one_line_for_a_worker_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(_first_batch_from_a_worker) == 2
    assert capsys.readouterr().err == f"error: {MESSAGE}\n"


def test_other_messages_are_left_as_they_are() -> None:
    text = "Caught up in a loop: data.root /x does not exist"
    assert user_message(DataError(text)) == text
    assert user_message(DataError("two\nlines")) == "two\nlines"
