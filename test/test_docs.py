"""README tables, config/caption.yaml and the code agree on the contract."""

import os
import re

from camera_caption.contract.launch_arguments import LAUNCH_ARGUMENTS
from camera_caption.contract.parameters import NODE_PARAMETERS
import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding='utf-8') as f:
        return f.read()


def user_docs():
    """Return the README and every page under docs/, as one text."""
    pages = ['README.md'] + sorted(
        os.path.join('docs', name) for name in os.listdir(
            os.path.join(ROOT, 'docs')) if name.endswith('.md'))
    return '\n'.join(read(page) for page in pages)


def readme_table(heading, page='README.md'):
    """Return {first cell: row cells} of the table under ``heading``."""
    text = read(*page.split('/'))
    start = text.index(heading)
    rows = {}
    for line in text[start:].splitlines()[1:]:
        if line.startswith('#') or (rows and not line.startswith('|')):
            break
        if line.startswith('|') and not line.startswith('|---'):
            cells = [c.strip() for c in line.strip('|').split('|')]
            rows[cells[0].strip('`')] = cells
    return rows


@pytest.mark.parametrize('node', sorted(NODE_PARAMETERS))
def test_yaml_declares_every_parameter_with_its_default_and_a_comment(node):
    config = yaml.safe_load(read('config', 'caption.yaml'))
    values = config[f'/**/{node}']['ros__parameters'] or {}
    specs = NODE_PARAMETERS[node]
    assert sorted(values) == sorted(s.name for s in specs)
    lines = read('config', 'caption.yaml').splitlines()
    for spec in specs:
        assert values[spec.name] == spec.default, spec.name
        index = next(i for i, line in enumerate(lines)
                     if line.strip().startswith(spec.name + ':'))
        assert lines[index - 1].strip().startswith('#'), spec.name


@pytest.mark.parametrize('node, page, heading', [
    ('camera', 'README.md', '### camera\n'),
    ('captioner', 'README.md', '### captioner\n'),
    ('caption_logger', 'README.md', '### caption_logger\n'),
    ('caption_memory', 'docs/memory.md', '## Parameters\n')])
def test_readme_documents_every_parameter_with_its_default(node, page,
                                                           heading):
    rows = readme_table(heading, page)
    specs = NODE_PARAMETERS[node]
    assert sorted(rows) == sorted(['parameter'] + [s.name for s in specs])
    for spec in specs:
        default = rows[spec.name][2].strip('`"')
        expected = str(spec.default).lower() if isinstance(
            spec.default, bool) else str(spec.default)
        assert default == expected, (spec.name, default, expected)
        assert ('*live*' in rows[spec.name][3]) == spec.live, spec.name


def test_readme_documents_every_launch_argument():
    rows = readme_table('## Launch arguments')
    assert sorted(rows) == sorted(['argument'] +
                                  [a.name for a in LAUNCH_ARGUMENTS])
    for arg in LAUNCH_ARGUMENTS:
        assert rows[arg.name][1].strip('`"') == arg.default, arg.name


def test_readme_names_every_executable_and_setup_py_installs_them():
    rows = readme_table('## Nodes, topics and executables')
    setup = read('setup.py')
    scripts = re.findall(r"'(\w+) = camera_caption\.([\w.]+):main'", setup)
    assert sorted(rows) == sorted(['executable (`ros2 run camera_caption …`)']
                                  + [name for name, _ in scripts])
    for name, module in scripts:
        assert os.path.exists(os.path.join(ROOT, 'camera_caption',
                                           *module.split('.')) + '.py')


def test_readme_test_command_is_what_ci_runs():
    readme = read('README.md')
    section = readme[readme.index('## Tests'):]
    command = re.search(r'```bash\n(.+?)\n```', section, re.S).group(1)
    assert command.strip() in read('.ci', 'run')


def readme_commands(prefix):
    """Return the README's shell lines starting with ``prefix``, split."""
    import shlex
    lines = [line for line in user_docs().splitlines()
             if line.startswith(prefix)]
    return [shlex.split(line, comments=True) for line in lines]


def test_readme_param_set_lines_parse_as_the_ros2_cli_parses_them():
    # ros2 param set hands the value to rclpy's get_parameter_value, which
    # reads it as YAML: "Question: ... Answer:" alone is a YAML mapping.
    from rclpy.parameter import get_parameter_value, \
        parameter_value_to_python
    commands = readme_commands('ros2 param set ')
    assert len(commands) >= 4
    for words in commands:
        node, name, text = words[3], words[4], words[5]
        node_name = node.rsplit('/', 1)[-1]
        spec = next(s for s in NODE_PARAMETERS[node_name] if s.name == name)
        value = parameter_value_to_python(get_parameter_value(text))
        assert spec.coerce(value) is not None, words
        if name == 'prompt':
            assert value == 'Question: is anyone at the door? Answer:'
        if name == 'watch':
            assert spec.coerce(value) in (('door|person',),
                                          ('door', '\\bdogs?\\b'))
    assert ['door|person'] in [w[5:] for w in commands if w[4] == 'watch']


def test_readme_launch_and_run_sh_lines_use_only_real_arguments():
    import shlex
    text = user_docs().replace('\\\n', ' ')
    names = {a.name for a in LAUNCH_ARGUMENTS}
    launches = [shlex.split(line, comments=True) for line in text.splitlines()
                if 'ros2 launch camera_caption caption.launch.py' in line]
    scripts = [shlex.split(line, comments=True) for line in text.splitlines()
               if line.startswith('bash scripts/run.sh')]
    assert launches and scripts
    for words in launches:
        for word in words[3:]:
            if ':=' in word:
                assert word.split(':=')[0] in names, word
    for words in scripts:
        options = [w[2:] for w in words[2:] if w.startswith('--')]
        assert options and set(options) <= names | {'help'}, words


def test_readme_is_short_with_contents_and_every_docs_page_linked():
    readme = read('README.md')
    assert len(readme.splitlines()) <= 300
    assert '**Contents:**' in readme
    for name in os.listdir(os.path.join(ROOT, 'docs')):
        if name.endswith('.md'):
            assert f'](docs/{name})' in readme, name


def test_links_between_pages_lead_to_files_that_exist():
    for page in ['README.md'] + ['docs/' + n for n in os.listdir(
            os.path.join(ROOT, 'docs')) if n.endswith('.md')]:
        base = os.path.dirname(os.path.join(ROOT, page))
        for target in re.findall(r'\]\(([^)#:]+)(?:#[^)]*)?\)', read(page)):
            assert os.path.exists(os.path.join(base, target)), (page, target)


def test_readme_topic_pub_question_parses_as_ros2_topic_pub_parses_it():
    # ros2 topic pub reads the message with yaml.safe_load and sets the
    # fields from the dict (rosidl_runtime_py.set_message_fields).
    from std_msgs.msg import String
    commands = [w for w in readme_commands('ros2 topic pub ')
                if '/question' in w]
    assert commands
    for words in commands:
        assert words[2:6] == ['pub', '--once', '/question',
                              'std_msgs/msg/String']
        values = yaml.safe_load(words[6])
        try:
            from rosidl_runtime_py.set_message import set_message_fields
            msg = String()
            set_message_fields(msg, values)
        except ImportError:                # not in the PyPI wheels
            msg = String(**values)
        assert msg.data == 'is the door open?'
