"""
Import modules with some top-level packages blocked; report what leaked.

    python import_blocker.py torch,transformers module [module ...]

Each module is imported with a finder that refuses the blocked packages;
a module whose import needs one prints ``FAIL module: chain`` (the
camera_caption files on the way), else ``OK module``.  A path ending in
``.py`` is loaded as a file (the launch file).  Exit status 1 on any FAIL.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import traceback


class Block(importlib.abc.MetaPathFinder):
    """Refuse to find the blocked top-level packages."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in self.names:
            chain = [f'{f.filename}:{f.lineno}' for f in
                     traceback.extract_stack()
                     if 'camera_caption' in f.filename
                     and 'import_blocker' not in f.filename]
            raise ImportError(f'{name} imported by ' + ' <- '.join(
                reversed(chain)))
        return None


def load(target):
    if target.endswith('.py'):
        spec = importlib.util.spec_from_file_location('launched', target)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def main(argv):
    sys.meta_path.insert(0, Block(argv[0].split(',')))
    status = 0
    for target in argv[1:]:
        try:
            load(target)
            print(f'OK {target}')
        except ImportError as exc:
            print(f'FAIL {target}: {exc}')
            status = 1
    return status


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
