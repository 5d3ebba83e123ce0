"""
The package's layers: each imports only those below it, no cycles, small modules.

From the bottom: the contract (parameters, constants, errors); utilities;
frames and engine; the pipeline; the ROS-free caption service; the ROS
nodes; the runners.  Tools (benchmarks, the demo model) stand apart: they
may use anything, and nothing of the runtime imports them.  Read from the
source's own import statements (function-local ones included).
"""

import ast
import os

import pytest

pytestmark = pytest.mark.unit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, 'camera_caption')
RANK = {'contract': 0, 'utilities': 1, 'frames': 2, 'engine': 2,
        'pipeline': 3, 'service': 4, 'memory': 4, 'nodes': 5, '__main__': 6, 'tools': 7}
LONGEST = 400
LONGEST_NODE = 300


def modules():
    """Return {dotted module name: path} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.')
                found[rel.removesuffix('.__init__')] = path
    return found


def imports_of(path):
    """Return the camera_caption modules that ``path`` imports."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f'{node.module}.{a.name}' for a in node.names)
    return {n for n in names if n.startswith('camera_caption.')}


def layer(module):
    """Return the folder that a module belongs to, its layer."""
    part = module.split('.')[1] if '.' in module else ''
    return part if part in RANK else None


def graph():
    found = modules()
    return {m: {i for i in imports_of(p) if i in found and i != m}
            for m, p in found.items()}


def test_every_module_is_in_a_layer():
    stray = [m for m in modules() if m != 'camera_caption'
             and layer(m) is None]
    assert not stray, stray


def test_no_import_runs_up_a_layer_and_the_runtime_never_imports_tools():
    wrong = []
    for module, targets in graph().items():
        if layer(module) is None:
            continue
        for target in targets:
            if RANK[layer(target)] > RANK[layer(module)] or (
                    layer(target) == 'tools' and layer(module) != 'tools'):
                wrong.append(f'{module} -> {target}')
            elif {layer(module), layer(target)} == {'frames', 'engine'}:
                wrong.append(f'{module} -> {target} (side by side)')
    assert not wrong, wrong


def test_no_import_cycles():
    edges = graph()
    state, cycles = {}, []

    def visit(module, path):
        state[module] = 'open'
        for target in sorted(edges[module]):
            if state.get(target) == 'open':
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = 'done'

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_modules_are_small_and_the_captioner_node_thin():
    lengths = {}
    for module, path in modules().items():
        with open(path, encoding='utf-8') as f:
            lengths[module] = len(f.read().splitlines())
    assert max(lengths.values()) <= LONGEST, sorted(
        lengths.items(), key=lambda item: -item[1])[:3]
    assert lengths['camera_caption.nodes.captioner_node'] <= LONGEST_NODE
