from smallfirst.models.generation_loop import held_back
from smallfirst.models.prompting import PLAIN_CUE, PREAMBLE, plain_chat_prompt
from smallfirst.types import Message


def test_plain_prompt_ends_with_cue_and_keeps_turns_in_order():
    prompt = plain_chat_prompt(
        [Message("user", "hi"), Message("assistant", "hello"), Message("user", "bye")]
    )
    assert prompt.endswith("User: hi\nAssistant: hello\nUser: bye\n" + PLAIN_CUE)
    assert prompt.startswith(PREAMBLE)


def test_system_message_replaces_the_default_preamble():
    prompt = plain_chat_prompt([Message("system", "Answer in French."), Message("user", "hi")])
    assert prompt.startswith("Answer in French.")
    assert PREAMBLE not in prompt


def test_held_back_keeps_possible_stop_prefixes():
    assert held_back("hello\nUs", ["\nUser:"]) == 3
    assert held_back("hello", ["\nUser:"]) == 0
    assert held_back("end\n", ["\nUser:", "\n\n"]) == 1
