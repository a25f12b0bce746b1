# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files whose whole content a module owns: compare, write atomically (after an optional
validation of the new content), remove. Several files in one module run, so that a role
converges them in one round trip to the host instead of one task per file."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time


def read_text(path):
    """The file's text, or None when there is no such file."""
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def file_mode(path):
    """The file's permission bits, or None when there is no such file."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None


def needs_write(path, content, mode):
    return read_text(path) != content or file_mode(path) != mode


def text_diff(path, before, after):
    """One entry of a module's diff list: the file before and after."""
    return {
        'before_header': path, 'after_header': path,
        'before': before if before is not None else '',
        'after': after if after is not None else '',
    }


def validate_command(template, path):
    """The validator's argument list, C(%s) replaced by the candidate file (quoted as one word)."""
    if '%s' not in template:
        raise ValueError("validate command %r has no %%s for the file to check" % template)
    return shlex.split(template.replace('%s', shlex.quote(path)))


def write_atomic(path, content, mode, validate=None, dir_mode=0o755):
    """Write content to path through a temporary file in the same directory, renamed over it
    only after validate (a command with %s) accepted it. Returns None, or the validator's
    complaint (the file is then left as it was)."""
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=dir_mode)
    handle, candidate = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path) + '.')
    try:
        with os.fdopen(handle, 'w', encoding='utf-8') as out:
            out.write(content)
        os.chmod(candidate, mode)
        if os.geteuid() == 0:
            os.chown(candidate, 0, 0)
        if validate:
            proc = subprocess.run(validate_command(validate, candidate), capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                return (proc.stderr or proc.stdout).strip() or 'exit status %d' % proc.returncode
        os.rename(candidate, path)
        candidate = None
        return None
    finally:
        if candidate is not None and os.path.exists(candidate):
            os.unlink(candidate)


def remove(path):
    """Remove a file, or a directory with everything in it; True when something was there."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
        return True
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


class Changes:
    """What one module run changes, or would in check mode: the result's C(changed) and its diff
    list, for files written whole and paths removed. Failures name the file."""

    def __init__(self, module, result, prefix=''):
        self.module = module
        self.result = result
        self.prefix = prefix
        self.diffs = []

    def write(self, path, content, mode, validate=None, backup=False):
        """Write one file that differs (checked by validate first); returns {'path', 'changed'} and,
        when backup kept the replaced file, its 'backup_file'."""
        entry = {'path': path, 'changed': needs_write(path, content, mode)}
        if not entry['changed']:
            return entry
        self.result['changed'] = True
        before = read_text(path)
        if self.module._diff:
            self.diffs.append(text_diff(path, before, content))
        if self.module.check_mode:
            return entry
        try:
            if backup and before is not None:
                entry['backup_file'] = '%s.%d.%s~' % (path, os.getpid(), time.strftime('%Y-%m-%d@%H:%M:%S'))
                shutil.copy2(path, entry['backup_file'])
            complaint = write_atomic(path, content, mode, validate)
        except (OSError, ValueError) as err:
            self.module.fail_json(msg="%scannot write %s: %s" % (self.prefix, path, err), **self.result)
        if complaint:
            self.module.fail_json(msg="%s%s was not written: '%s' rejected it: %s" % (self.prefix, path, validate, complaint),
                                  **self.result)
        return entry

    def remove(self, path):
        """Remove a file or a directory tree that exists; True when there was one."""
        if not os.path.lexists(path):
            return False
        self.result['changed'] = True
        if self.module._diff:
            self.diffs.append({'before': {'path': path, 'state': 'present'}, 'after': {'path': path, 'state': 'absent'}})
        if not self.module.check_mode:
            remove(path)
        return True

    def exit(self):
        if self.diffs:
            self.result['diff'] = self.diffs
        self.module.exit_json(**self.result)
