"""Tokenizer and vocabulary."""

from __future__ import annotations

import torch

from photoseek.encoders.tokenizer import PAD, UNK, Tokenizer, Vocabulary, split_words, swap_left_right


def test_split_words_lowercases_and_drops_punctuation() -> None:
    assert split_words("A Red circle, LEFT of two blue squares!") == ["a", "red", "circle", "left", "of", "two",
                                                                     "blue", "squares"]


def test_vocabulary_min_freq_order_and_specials() -> None:
    vocab = Vocabulary.build(["a red circle", "a blue circle", "a red square"], min_freq=2)
    assert vocab.words == [PAD, UNK, "a", "circle", "red"]  # by falling count, then alphabetically


def test_vocabulary_round_trip(tmp_path) -> None:
    vocab = Vocabulary.build(["a red circle on the left", "two blue stars"])
    vocab.save(tmp_path / "vocab.json")
    again = Vocabulary.load(tmp_path / "vocab.json")
    assert again.words == vocab.words and again.index == vocab.index


def test_tokenizer_pads_truncates_and_maps_unknown_words() -> None:
    tok = Tokenizer(Vocabulary.build(["a red circle"]), context_length=4)
    ids = tok(["a red circle", "a green circle on the left", ""])
    assert ids.shape == (3, 4) and ids.dtype == torch.long
    assert tok.decode(ids[0]) == "a red circle" and ids[0, 3] == 0
    assert ids[1].tolist() == [tok.vocab.index["a"], 1, tok.vocab.index["circle"], 1]  # green, on -> <unk>
    assert ids[2].tolist() == [1, 0, 0, 0]  # empty caption: one <unk> so pooling is defined


def test_swap_left_right_keeps_case_and_whole_words() -> None:
    assert swap_left_right("Left of a star, top right; leftover") == "Right of a star, top left; leftover"
