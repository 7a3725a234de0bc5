"""Local models' pure parts: stop sequences across token boundaries, and prompt formats."""

from hypothesis import given
from hypothesis import strategies as st

from polyroute.providers.local.prompt import gemma_prompt, render_template
from polyroute.providers.local.stops import StopScanner


def run(stops, pieces):
    scanner = StopScanner(stops)
    out, stopped = [], False
    for piece in pieces:
        text, stopped = scanner.feed(piece)
        out.append(text)
        if stopped:
            break
    if not stopped:
        out.append(scanner.flush())
    return "".join(out), stopped


def test_stop_sequence_split_over_pieces_is_cut_cleanly():
    assert run(["END"], ["Hello E", "N", "D and more"]) == ("Hello ", True)


def test_a_false_start_is_released():
    assert run(["END"], ["Hello E", "NZ"]) == ("Hello ENZ", False)


def test_no_stops_pass_everything():
    assert run([], ["a", "b"]) == ("ab", False)


@given(st.text(alphabet="abcXY", max_size=40), st.lists(st.integers(1, 5), max_size=20))
def test_output_equals_text_up_to_the_first_stop_however_it_is_split(text, cuts):
    pieces, position = [], 0
    for size in cuts:
        pieces.append(text[position : position + size])
        position += size
    pieces.append(text[position:])
    index = text.find("XY")
    expected = (text[:index], True) if index >= 0 else (text, False)
    assert run(["XY"], pieces) == expected


def test_gemma_turns_fold_the_system_prompt_into_the_first_user_turn():
    prompt = gemma_prompt(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": [{"type": "text", "text": "Capital of China?"}]},
        ]
    )
    assert prompt == (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nCapital of China?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


CHATML = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_a_files_chat_template_is_rendered_with_a_generation_prompt():
    prompt = render_template(CHATML, [{"role": "developer", "content": "x"}], bos_token="", eos_token="")
    assert prompt == "<|im_start|>system\nx<|im_end|>\n<|im_start|>assistant\n"
