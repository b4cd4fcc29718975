"""Tests of scratchvae.data.corpus: readers, Vocab, encoding and word dropout."""

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchvae.data.corpus import (
    Vocab,
    encode_sentences,
    encode_text,
    read_csv,
    read_ptb,
    read_text,
    tokenize,
    word_dropout,
)
from scratchvae.data.errors import DataError
from scratchvae.data.reserved import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID

SENTENCES = [["the", "cat", "sat"], ["the", "dog", "sat", "down"], ["a", "cat"]]
VOCAB = Vocab.build(SENTENCES)
WORDS = st.sampled_from(VOCAB.words[len(SPECIALS) :])


def write(path: Path, text: str | bytes) -> Path:
    """Write ``text`` to ``path`` and return the path."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def assert_one_line(err: pytest.ExceptionInfo, *parts: str) -> None:
    """The error message is one line that mentions every one of ``parts``."""
    message = str(err.value)
    assert "\n" not in message
    for part in parts:
        assert part in message


# Vocab


def test_vocab_reserves_ids_and_ranks_by_frequency() -> None:
    vocab = Vocab.build(SENTENCES)
    assert vocab.words[:4] == ("<pad>", "<unk>", "<s>", "</s>")
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert vocab.words[4:] == ("cat", "sat", "the", "a", "dog", "down")
    assert len(vocab) == 10


def test_vocab_max_size_and_min_count() -> None:
    assert Vocab.build(SENTENCES, max_size=6).words[4:] == ("cat", "sat")
    assert Vocab.build(SENTENCES, min_count=2).words[4:] == ("cat", "sat", "the")
    with pytest.raises(DataError):
        Vocab.build(SENTENCES, max_size=3)


def test_vocab_does_not_count_special_tokens_in_text() -> None:
    vocab = Vocab.build([["<unk>", "<unk>", "word"]])
    assert vocab.words == (*SPECIALS, "word")
    assert vocab.encode(["<unk>", "word", "unseen"]) == [UNK_ID, 4, UNK_ID]


def test_decode_strips_specials_up_to_end_of_sentence() -> None:
    ids = [BOS_ID, *VOCAB.encode(["the", "cat", "zebra"]), EOS_ID, *VOCAB.encode(["dog"]), PAD_ID]
    assert VOCAB.decode(ids) == "the cat <unk>"
    assert VOCAB.decode(ids, strip_special=False) == "<s> the cat <unk> </s> dog <pad>"


@given(st.lists(WORDS))
def test_encode_decode_round_trip(words: list[str]) -> None:
    assert VOCAB.decode(VOCAB.encode(words)) == " ".join(words)


def test_vocab_json_round_trip() -> None:
    assert Vocab.from_json(VOCAB.to_json()).words == VOCAB.words


@pytest.mark.parametrize(
    "text", ["not json", '{"words": 1}', '["a", "b"]', '["<pad>", "<unk>", "<s>", "</s>", "a", "a"]']
)
def test_vocab_from_bad_json(text: str) -> None:
    with pytest.raises(DataError) as err:
        Vocab.from_json(text)
    assert_one_line(err, "Vocab")


# Readers


def test_tokenize_splits_punctuation_and_lowercases() -> None:
    assert tokenize("Hi, it's 3.5 snack-food!") == ["hi", ",", "it's", "3.5", "snack-food", "!"]
    assert tokenize("the <unk> (rare)") == ["the", "<unk>", "(", "rare", ")"]


@given(st.text())
def test_tokenize_keeps_every_character(text: str) -> None:
    tokens = tokenize(text)
    assert all(token and not any(c.isspace() for c in token) for token in tokens)
    assert "".join(tokens) == "".join(text.lower().split())


def test_read_text(tmp_path: Path) -> None:
    path = write(tmp_path / "s.txt", "\ufeffThe cat sat.\n\n  A DOG, barking!\r\n")
    assert read_text(path) == [["the", "cat", "sat", "."], ["a", "dog", ",", "barking", "!"]]


@pytest.mark.parametrize("text", ["", "\n  \n\n"])
def test_read_text_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "empty.txt", text)
    with pytest.raises(DataError) as err:
        read_text(path)
    assert_one_line(err, str(path), "empty")


def test_read_text_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_text(tmp_path / "nope.txt")
    assert_one_line(err, "nope.txt", "check the path")


def test_read_text_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "latin1.txt", "first line\nsecond line\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        read_text(path)
    assert_one_line(err, str(path), "line 3", "0xe9", "UTF-8")


def test_read_csv_handles_quotes_and_newlines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "q.csv",
        'id,question1,question2\n0,"What is a ""VAE""?",b\n1,"Why, oh\nwhy?",c\n2,,d\n3,Short one,e\n',
    )
    assert read_csv(path, "question1") == [
        ["what", "is", "a", '"', "vae", '"', "?"],
        ["why", ",", "oh", "why", "?"],
        ["short", "one"],
    ]


def test_read_csv_missing_column_lists_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "q.csv", "id,question1,question2\n0,a,b\n")
    with pytest.raises(DataError) as err:
        read_csv(path, "question")
    assert_one_line(err, "'question'", "id, question1, question2")


def test_read_csv_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path / "q.csv", "")
    with pytest.raises(DataError) as err:
        read_csv(path, "question1")
    assert_one_line(err, str(path), "empty")


def test_read_csv_empty_column(tmp_path: Path) -> None:
    path = write(tmp_path / "q.csv", "id,question1\n0,\n1, \n")
    with pytest.raises(DataError) as err:
        read_csv(path, "question1")
    assert_one_line(err, "no text", "question1")


def test_read_csv_runaway_quote(tmp_path: Path) -> None:
    path = write(tmp_path / "q.csv", 'id,question1\n0,"unclosed\n' + "words and more words\n" * 10_000)
    with pytest.raises(DataError) as err:
        read_csv(path, "question1")
    assert_one_line(err, str(path), "field larger than field limit", "CSV quoting")


def test_read_csv_not_utf8_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "q.csv", b'id,question1\n0,"two\nlines"\n1,caf\xe9\n')
    with pytest.raises(DataError) as err:
        read_csv(path, "question1")
    assert_one_line(err, str(path), "line 4", "UTF-8")


def write_ptb(data_dir: Path, split: str, text: str) -> None:
    """Write ``text`` as the PTB ``split`` of ``data_dir``."""
    (data_dir / "ptb").mkdir(exist_ok=True)
    write(data_dir / "ptb" / f"ptb.{split}.txt", text)


def test_read_ptb_keeps_unk(tmp_path: Path) -> None:
    write_ptb(tmp_path, "valid", " the <unk> fell N % \n")
    sentences = read_ptb(tmp_path, "valid")
    assert sentences == [["the", "<unk>", "fell", "N", "%"]]
    assert Vocab.build(sentences).encode(sentences[0])[1] == UNK_ID


def test_read_ptb_missing_files_says_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError) as err:
        read_ptb(tmp_path / "data", "train")
    assert_one_line(err, str(tmp_path / "data" / "ptb"), "ptb.train.txt", "SCRATCHVAE_DATA")


def test_read_ptb_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_ptb(tmp_path, "test", "a b\n")
    monkeypatch.setenv("SCRATCHVAE_DATA", str(tmp_path))
    assert read_ptb(None, "test") == [["a", "b"]]


def test_read_ptb_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_ptb(tmp_path, "dev")
    assert_one_line(err, "'dev'", "train, valid, test")


@pytest.mark.skipif(
    not (Path(os.environ.get("SCRATCHVAE_DATA", "/nonexistent")) / "ptb").is_dir(),
    reason="set SCRATCHVAE_DATA to a folder with ptb/ to read the real PTB",
)
def test_real_ptb() -> None:
    data_dir = os.environ["SCRATCHVAE_DATA"]
    train, valid = read_ptb(data_dir, "train"), read_ptb(data_dir, "valid")
    assert (len(train), len(valid)) == (42_068, 3_370)
    # Mikolov's 10,000 words are 9,998 words + <unk> + the end-of-sentence marker; our Vocab has the same
    # 10,000 (</s> for the marker) plus <pad> and <s>.
    vocab = Vocab.build(train)
    assert len(vocab) == 10_000 + 2
    assert sum(word in vocab for sentence in valid for word in sentence) == sum(map(len, valid))
    data = encode_sentences(train, vocab, max_len=100)
    assert len(data) == len(train) and data.lengths.max() == 83


# Encoding


def test_encode_sentences_shifts_targets() -> None:
    data = encode_sentences([["the", "cat"], ["dog"]], VOCAB, max_len=5)
    the, cat, dog = VOCAB.encode(["the", "cat", "dog"])
    np.testing.assert_array_equal(data.inputs, [[BOS_ID, the, cat], [BOS_ID, dog, PAD_ID]])
    np.testing.assert_array_equal(data.targets, [[the, cat, EOS_ID], [dog, EOS_ID, PAD_ID]])
    np.testing.assert_array_equal(data.lengths, [3, 2])
    assert data.inputs.dtype == data.targets.dtype == data.lengths.dtype == np.int32


def test_encode_sentences_long_ones_dropped_or_truncated() -> None:
    dropped = encode_sentences(SENTENCES, VOCAB, max_len=3)
    assert [VOCAB.decode(row) for row in dropped.targets] == ["the cat sat", "a cat"]
    truncated = encode_sentences(SENTENCES, VOCAB, max_len=3, on_long="truncate")
    assert [VOCAB.decode(row) for row in truncated.targets] == ["the cat sat", "the dog sat", "a cat"]
    with pytest.raises(DataError):
        encode_sentences(SENTENCES, VOCAB, max_len=1)
    with pytest.raises(DataError):
        encode_sentences(SENTENCES, VOCAB, max_len=3, on_long="cut")  # type: ignore[arg-type]


@given(st.lists(st.lists(WORDS, max_size=8), min_size=1, max_size=10))
def test_encoded_rows_are_consistent(sentences: list[list[str]]) -> None:
    data = encode_sentences(sentences, VOCAB, max_len=8)
    for inputs, targets, steps, words in zip(data.inputs, data.targets, data.lengths, sentences):
        assert steps == len(words) + 1
        assert inputs[0] == BOS_ID and targets[steps - 1] == EOS_ID
        np.testing.assert_array_equal(inputs[1:steps], targets[: steps - 1])
        assert (inputs[steps:] == PAD_ID).all() and (targets[steps:] == PAD_ID).all()
        assert VOCAB.decode(inputs) == VOCAB.decode(targets) == " ".join(words)


def test_batch_of_encoded_sentences_is_cut_to_its_longest() -> None:
    data = encode_sentences(SENTENCES, VOCAB, max_len=10)
    batch = data[np.array([2, 0])]
    assert batch.inputs.shape == batch.targets.shape == (2, 4)
    np.testing.assert_array_equal(batch.lengths, [3, 4])


def test_encode_text_for_user_sentences() -> None:
    data = encode_text(["The cat!", "a dog"], VOCAB, max_len=5)
    assert [VOCAB.decode(row) for row in data.targets] == ["the cat <unk>", "a dog"]


@pytest.mark.parametrize("text", ["xyz", "Zebra, quokka!", ""])
def test_encode_text_needs_a_known_word(text: str) -> None:
    with pytest.raises(DataError) as err:
        encode_text(["the cat", text], VOCAB, max_len=5)
    assert_one_line(err, f"no known word in {text!r}", "training vocabulary")


def test_encode_text_too_long() -> None:
    with pytest.raises(DataError) as err:
        encode_text(["the cat sat down"], VOCAB, max_len=3)
    assert_one_line(err, "4 words", "max_len=3")


# Word dropout and batching

INPUTS = st.lists(st.lists(st.integers(0, len(VOCAB) - 1), min_size=1, max_size=12), min_size=1, max_size=8)


def as_inputs(rows: list[list[int]]) -> np.ndarray:
    """Decoder inputs (B, T): ``<s>`` then the row's ids (none of them special) then padding."""
    steps = max(map(len, rows)) + 1
    inputs = np.full((len(rows), steps), PAD_ID, dtype=np.int32)
    for i, row in enumerate(rows):
        inputs[i, : len(row) + 1] = [BOS_ID, *(max(id_, len(SPECIALS)) for id_ in row)]
    return inputs


@given(INPUTS, st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))
def test_word_dropout_never_touches_padding_or_start(rows: list[list[int]], rate: float, seed: int) -> None:
    inputs = as_inputs(rows)
    out = word_dropout(inputs, rate, np.random.default_rng(seed))
    kept = np.isin(inputs, [PAD_ID, BOS_ID])
    np.testing.assert_array_equal(out[kept], inputs[kept])
    assert ((out == inputs) | (out == UNK_ID)).all()
    assert out.dtype == inputs.dtype


@given(INPUTS, st.integers(0, 2**32 - 1))
def test_word_dropout_rates_zero_and_one(rows: list[list[int]], seed: int) -> None:
    inputs = as_inputs(rows)
    np.testing.assert_array_equal(word_dropout(inputs, 0.0, np.random.default_rng(seed)), inputs)
    words = ~np.isin(inputs, [PAD_ID, BOS_ID])
    assert (word_dropout(inputs, 1.0, np.random.default_rng(seed))[words] == UNK_ID).all()


def test_word_dropout_rate() -> None:
    inputs = np.full((200, 50), 7, dtype=np.int32)
    out = word_dropout(inputs, 0.3, np.random.default_rng(0))
    assert abs((out == UNK_ID).mean() - 0.3) < 0.01
    assert (inputs == 7).all()
    with pytest.raises(DataError):
        word_dropout(inputs, 1.5, np.random.default_rng(0))
