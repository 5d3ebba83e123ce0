"""
The launch file and the README's commands through the real ros2 CLI.

``ros2 launch camera_caption caption.launch.py`` runs the demo model on
the test pattern; every ``ros2 param``, ``ros2 service call``, ``ros2
topic pub/echo`` and ``ros2 lifecycle`` line of the README runs against it
exactly as written there (parsed out of the README, so the two cannot
drift); then Ctrl-C, sent to the whole process group as a terminal does,
ends every process within a second with status 0 and no ERROR line.
"""

import os
import re
import socket
import threading

import pytest
from ros2_cli import require_ros2, run, Running, stop_daemon
import yaml

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = 'ros2 launch camera_caption caption.launch.py'
CAPTION = re.compile(r'(data: )?a (red|green|blue|yellow) (circle|square|'
                     r'triangle) on a (white|black) background$')
# What a node may take to end after Ctrl-C (the target is 1 s), and what
# the whole launch may take.
NODE_EXIT_S = 1.0
LAUNCH_EXIT_S = 5.0
NOT_YET = 'does not appear to be published yet'


def plain(line):
    """Return a log line without its colour codes (launch's emulate_tty)."""
    return re.sub(r'\x1b\[[0-9;]*m', '', line).rstrip()


def readme_commands():
    """Every ros2 param/service/topic/lifecycle line of README and docs/."""
    pages = ['README.md'] + sorted(
        os.path.join('docs', name) for name in os.listdir(
            os.path.join(ROOT, 'docs')) if name.endswith('.md'))
    text = ''
    for page in pages:
        with open(os.path.join(ROOT, page), encoding='utf-8') as f:
            text += f.read() + '\n'
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', text, re.S):
        for line in block.splitlines():
            line = re.sub(r'\s{2,}#.*$', '', line).strip()
            if re.match(r'ros2 (param|service|topic|lifecycle) ', line):
                commands.append(line)
    return commands


def kind(command):
    """Return the check a README command gets."""
    words = command.split()
    if words[1] == 'param':
        return 'param ' + words[2]
    if words[1] == 'service':
        return 'service'
    if words[1] == 'topic':
        return 'topic ' + words[2]
    return 'lifecycle'


def test_readme_has_the_commands_this_test_checks():
    commands = readme_commands()
    kinds = {kind(c) for c in commands}
    assert kinds <= {'param set', 'param get', 'service', 'topic echo',
                     'topic pub', 'lifecycle'}, kinds
    assert {'param set', 'param get', 'service', 'topic echo', 'topic pub',
            'lifecycle'} <= kinds, kinds


@pytest.fixture(scope='module')
def launched(demo_model_dir, tmp_path_factory):
    require_ros2()
    home = tmp_path_factory.mktemp('ros_home')     # the memory's place
    launch = Running(f'{LAUNCH} source:=test_pattern model:={demo_model_dir}'
                     ' rate_hz:=2 memory:=true', ROS_HOME=str(home))
    try:
        line = launch.wait_for(lambda x: 'caption_logger]: caption: ' in x,
                               120)
        assert line, launch.output
        yield launch
    finally:
        launch.kill()
        stop_daemon()


def ok(command, expected='', timeout=60):
    """
    Run a command line; it must succeed and print ``expected``.

    Right after a launch the ros2 daemon may not know a node yet ("Node
    not found", as the README says): then the line is run again, as a user
    would, each try taking the CLI's own second or so.
    """
    for _ in range(15):
        status, output = run(command, timeout)
        if 'Node not found' not in output:
            break
    assert status == 0, (command, output)
    assert expected in output, (command, output)
    return output


def restore():
    """Put back what README lines changed, so that captions flow again."""
    for name, value in (('prompt', "''"), ('rate_hz', '2.0'),
                        ('scene_change_threshold', '0.0'),
                        ('dedupe', 'false'), ('clip_frames', '1'),
                        ('system_prompt', "''"), ('watch', "''"),
                        ('event_holdoff_s', '30.0')):
        ok(f'ros2 param set /captioner {name} {value}', 'successful')
    ok('ros2 service call /captioner/enable std_srvs/srv/SetBool '
       '"{data: true}"', 'success=True')


def echo_until(command, predicate, timeout=60, before=None):
    """
    Run an echo line until a line satisfies ``predicate``; Ctrl-C it.

    ``ros2 topic echo`` gives up at once when the ros2 daemon has not seen
    the topic yet ("does not appear to be published yet"), as a user sees
    right after a launch: then it is run again, as a user would.
    """
    for _ in range(10):
        echo = Running(command)
        try:
            line = None
            for _ in range(6 if before else 1):
                if before:          # again: the echo may not listen yet
                    before()
                line = echo.wait_for(
                    lambda x: predicate(x) or NOT_YET in x,
                    timeout / 6 if before else timeout)
                if line:
                    break
            assert line, (command, echo.output)
            if NOT_YET in line:
                echo.proc.wait(30)
                continue
            status, took, _ = echo.ctrl_c()
            # ros2 topic echo's own status on Ctrl-C is ros2cli's business.
            assert status is not None and took < LAUNCH_EXIT_S, (
                command, status, took, echo.output)
            return line
        finally:
            echo.kill()
    raise AssertionError(f'{command}: the topic never appeared')


def value_shown(text):
    """Return what ``ros2 param get`` prints for a ``param set`` value."""
    value = yaml.safe_load(text)
    return str(value)


def test_launch_captions_what_the_camera_shows(launched):
    line = echo_until('ros2 topic echo /caption',
                      lambda x: x.startswith('data: '))
    assert CAPTION.match(line), line
    logged = [plain(x).split('caption: ', 1)[1] for x in launched.lines
              if 'caption_logger]: caption: ' in x]
    assert logged and all(CAPTION.match(c) for c in logged), logged


def test_readme_param_and_service_lines(launched):
    for command in readme_commands():
        if kind(command) == 'param set':
            ok(command, 'Set parameter successful')
            name, text = command.split(None, 5)[4:6]
            shown = ok(f'ros2 param get /captioner {name}')
            words = re.findall(r'"[^"]*"|\S+', text)
            given = words[0].strip('"')
            assert value_shown(given) in shown, (command, shown)
        elif kind(command) == 'param get':
            ok(command, 'value is:')
        elif kind(command) == 'service':
            ok(command, 'success=True')
            assert 'False' in ok('ros2 param get /captioner enable')
    restore()


def test_readme_echo_and_pub_lines(launched):
    commands = readme_commands()
    pubs = [c for c in commands if kind(c) == 'topic pub']
    assert pubs
    checks = {
        '/caption': lambda x: bool(CAPTION.match(x)),
        '/diagnostics': lambda x: 'name: captioner' in x or (
            'captioner' in x and 'name:' in x),
        '/answer': lambda x: x.startswith('data: '),
        '/caption_event': lambda x: '"pattern": "circle"' in x,
        '/recall_result': lambda x: '"request": "green triangle", "count": '
        in x,
    }
    seen = set()

    def ask():
        for pub in pubs:
            ok(pub, 'publishing')

    def watch():
        # An event is published once, on a caption that newly matches: make
        # a new match each time, while this echo listens.
        ok("ros2 param set /captioner watch ''", 'successful')
        ok('ros2 param set /captioner watch circle', 'successful')

    for command in commands:
        if kind(command) != 'topic echo':
            continue
        topic = command.split()[3]
        assert topic in checks, f'README echoes {topic}: add its check'
        before = {'/answer': ask, '/caption_event': watch,
                  '/recall_result': ask}.get(topic)
        if topic == '/caption_event':
            ok('ros2 param set /captioner event_holdoff_s 0.0', 'successful')
        echo_until(command, checks[topic], before=before)
        seen.add(topic)
    assert {'/caption', '/answer', '/diagnostics', '/caption_event',
            '/recall_result'} <= seen
    restore()


def test_readme_lifecycle_lines(launched):
    states = {'get': None}
    for command in readme_commands():
        if kind(command) != 'lifecycle':
            continue
        output = ok(command)
        if ' get ' in command:
            states['get'] = output.split()[0]
        else:
            assert 'Transitioning successful' in output, (command, output)
    assert states['get'] == 'active', states
    shown = ok('ros2 lifecycle get /captioner')
    assert shown.startswith('unconfigured'), shown
    start = len(launched.lines)
    ok('ros2 lifecycle set /captioner configure', 'Transitioning successful')
    ok('ros2 lifecycle set /captioner activate', 'Transitioning successful')
    assert launched.wait_for(lambda x: 'caption_logger]: caption: ' in x, 60,
                             start), launched.output


def test_ctrl_c_ends_the_launch_with_status_0_and_no_error(launched):
    status, took, ended = launched.ctrl_c()
    output = launched.output
    assert status == 0, output
    assert took < NODE_EXIT_S, (took, output)     # launch itself too
    assert len(ended) == 4, (ended, output)     # memory:=true: four nodes
    assert max(ended.values()) < NODE_EXIT_S, (ended, output)
    bad = [x for x in launched.lines if 'ERROR' in x or 'Traceback' in x
           or 'xception' in x]
    assert not bad, output
    assert output.count('process has finished cleanly') == 4, output


def test_bad_launch_argument_is_one_line_and_fails():
    require_ros2()
    status, output = run(f'{LAUNCH} rate_hz:=-1 source:=test_pattern')
    assert status != 0, output
    said = [x for x in output.splitlines() if 'rate_hz' in x]
    assert len(said) == 1, output
    assert "'rate_hz' = -1 is invalid: must be > 0" in said[0], output
    assert 'Traceback' not in output and 'process started' not in output


def test_show_args_lists_every_launch_argument():
    require_ros2()
    from camera_caption.contract.launch_arguments import LAUNCH_ARGUMENTS
    output = ok(f'{LAUNCH} --show-args')
    for arg in LAUNCH_ARGUMENTS:
        assert f"'{arg.name}':" in output, arg.name


@pytest.fixture
def silent_hub():
    """Give a hub that accepts connections and never answers."""
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.getsockname()[1]}'
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def test_ctrl_c_while_the_hub_probe_waits(silent_hub):
    require_ros2()
    launch = Running(f'{LAUNCH} source:=test_pattern model:=someone/model',
                     HF_HUB_OFFLINE='0', TRANSFORMERS_OFFLINE='0',
                     HF_ENDPOINT=silent_hub)
    try:
        assert launch.wait_for(lambda x: "loading model 'someone/model'" in x,
                               60), launch.output
        status, took, ended = launch.ctrl_c()
    finally:
        launch.kill()
    output = launch.output
    assert status == 0 and took < LAUNCH_EXIT_S, (status, took, output)
    assert len(ended) == 3 and max(ended.values()) < NODE_EXIT_S, (
        ended, output)
    assert 'FATAL' not in output and 'ERROR' not in output, output


def test_ctrl_c_while_configure_loads_through_ros2_lifecycle(silent_hub):
    require_ros2()
    launch = Running(f'{LAUNCH} autostart:=false use_camera:=false '
                     'model:=someone/model', HF_HUB_OFFLINE='0',
                     TRANSFORMERS_OFFLINE='0', HF_ENDPOINT=silent_hub)
    configure = None
    try:
        assert launch.wait_for(lambda x: 'unconfigured (autostart is false)'
                               in x, 60), launch.output
        # Right after a launch the node may not be discovered yet ("Node
        # not found", as the README says): the user runs it again, with and
        # without the daemon (--no-daemon looks for half a second only).
        for attempt in range(10):
            daemon = '' if attempt % 2 else '--no-daemon '
            configure = Running(f'ros2 lifecycle set {daemon}/captioner '
                                'configure')
            if launch.wait_for(lambda x: "loading model 'someone/model'" in x,
                               8):
                break
            configure.kill()
        loading = launch.wait_for(
            lambda x: "loading model 'someone/model'" in x, 1)
        if not loading:      # say what the graph looked like, for the log
            graph = run('ros2 node list --no-daemon --spin-time 5; ros2 '
                        'service list --no-daemon --spin-time 5')[1]
            raise AssertionError((launch.output, configure.output, graph))
        status, took, ended = launch.ctrl_c()
    finally:
        launch.kill()
        if configure is not None:
            configure.kill()
        stop_daemon()
    output = launch.output
    assert status == 0 and took < LAUNCH_EXIT_S, (status, took, output)
    assert len(ended) == 2 and max(ended.values()) < NODE_EXIT_S, (
        ended, output)
    assert 'FATAL' not in output and 'ERROR' not in output, output


def test_the_launch_file_imports_neither_torch_nor_transformers():
    require_ros2()
    from ros2_cli import package_prefix
    launch_file = os.path.join(package_prefix(), 'share', 'camera_caption',
                               'launch', 'caption.launch.py')
    blocker = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'import_blocker.py')
    status, output = run(f'python3 {blocker} torch,transformers '
                         f'{launch_file}')
    assert status == 0 and f'OK {launch_file}' in output, output
