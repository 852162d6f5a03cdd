import json

import pytest

from smallfirst.distill.finetune import (
    FinetuneUnavailableError,
    LoraSettings,
    check_training_file,
    finetune,
    missing_requirements,
)
from smallfirst.errors import InvalidRequestError


def test_without_gpu_or_packages_it_explains_what_is_missing(tmp_path):
    if not missing_requirements():
        pytest.skip("this machine can fine-tune")
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"prompt": "Text: hi\nAnswer:", "completion": " greet"}) + "\n")
    with pytest.raises(FinetuneUnavailableError) as caught:
        finetune(data, tmp_path / "out", LoraSettings("some/model"))
    message = caught.value.message
    assert "cannot run on this machine" in message
    assert "CUDA GPU" in message and "smallfirst[finetune]" in message
    assert caught.value.status == 503
    assert not (tmp_path / "out").exists()


def test_training_file_is_checked_first(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"messages": []}\n\n{"prompt": "p", "completion": "c"}\n')
    assert check_training_file(good) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n{"text": "x"}\n')
    with pytest.raises(InvalidRequestError, match=r"bad.jsonl:2: expected"):
        finetune(bad, tmp_path / "out", LoraSettings("m"))
    with pytest.raises(InvalidRequestError, match="does not exist"):
        check_training_file(tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InvalidRequestError, match="empty"):
        check_training_file(tmp_path / "empty.jsonl")
