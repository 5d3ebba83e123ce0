"""Text from outside is made safe to publish and log; other text passes."""

from camera_caption.contract.watch_patterns import compile_patterns
from camera_caption.utilities.safe_text import mask, safe_text
import pytest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize('raw,safe', [
    ('\x1b[2J\x1b[H\x1b[31;1mALERT\x1b[0m', 'ALERT'),
    ('\x1b]0;pwned title\x07a cat', 'a cat'),
    ('\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\', 'link'),
    ('\x1bPq#0;2;0;0;0\x1b\\after', 'after'),
    ('\x9b31mred', 'red'),
    ('a cat\n[ERROR] [captioner]: forged', 'a cat [ERROR] [captioner]: forged'),
    ('one\r\ntwo\tthree\x0bfour', 'one two three four'),
    ('a\x00b', 'a b'),
    ('bell\x07 del\x7f c1\x85x', 'bell del c1 x'),
    ('\u202eevil\u2066', 'evil'),
    ('赤い丸が白い背景にある', '赤い丸が白い背景にある'),
    ('a red circle on a white background',
     'a red circle on a white background'),
])
def test_safe_text(raw, safe):
    assert safe_text(raw) == safe


def test_cut_to_the_limit_with_a_marker():
    assert safe_text('word ' * 100, 20) == 'word word word word…'
    assert len(safe_text('あ' * 5000, 2000)) == 2000
    assert safe_text('short', 20) == 'short'


def test_mask():
    assert mask('Bearer sk-1 and sk-1', 'sk-1', '') == 'Bearer *** and ***'


def test_watch_patterns_refuse_control_characters_and_take_escapes():
    with pytest.raises(ValueError, match='control character'):
        compile_patterns(['door\x1b[2J'])
    assert compile_patterns([r'\x1b'])[0].search('a\x1bb')
