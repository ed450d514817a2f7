#!/usr/bin/env python3
"""Breaks the lock protocol on purpose, one line at a time, and checks that the model test
guarding that line fails (src/protocol/model/). Restores every file, whatever happens.

    python3 tools/protocol_mutations.py            # all 14 mutations (about 12 minutes)
    python3 tools/protocol_mutations.py fresh      # those whose name contains "fresh"

Each mutation: (name, file, the text to replace, its replacement, the model test to run).
A mutation "survives" when its test passes anyway: the script then exits 1.
"""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

MUTATIONS = [
    (
        "rollback wakes only by the sleeper count",
        "src/protocol/acquire.rs",
        "if cur.has_waiters() || obj.sleepers().load(Ordering::Acquire) > 0 {\n                obj.wake(1);",
        "if obj.sleepers().load(Ordering::Acquire) > 0 {\n                obj.wake(1);",
        "wait_all_rollback_preserves_abandonment",
    ),
    (
        "rollback frees an abandoned mutex instead of giving it back to the dead",
        "src/protocol/acquire.rs",
        "cur.keep_waiters(LockWord::owned_by(dead.token())),",
        "cur.keep_waiters(LockWord::FREE),",
        "wait_all_rollback_preserves_abandonment",
    ),
    (
        "stealing from the dead with a swap instead of a compare-and-swap",
        "src/protocol/acquire.rs",
        "obj.cas_word(cur, new, Ordering::Acquire, Ordering::Relaxed)\n        .ok()?;",
        "obj.swap_word(new, Ordering::Acquire);",
        "abandonment_while_holding_is_reported_once",
    ),
    (
        "revocation without the heavy barrier",
        "src/protocol/bias.rs",
        "    H::heavy_barrier();\n",
        "",
        "biased_release_races_a_revocation",
    ),
    (
        "a revocation frees the word without passing the biased thread's data on",
        "src/protocol/bias.rs",
        ".cas_word(request, LockWord::FREE, Ordering::AcqRel, Ordering::Relaxed)",
        ".cas_word(request, LockWord::FREE, Ordering::Acquire, Ordering::Relaxed)",
        "a_revoked_bias_hands_the_data_to_a_third_thread",
    ),
    (
        "the FRESH release ignores a waiter",
        "src/protocol/release.rs",
        "    if obj\n        .cas_word(\n            LockWord::owned_by(me),\n            LockWord::BIASABLE,",
        "    obj.swap_word(LockWord::BIASABLE, Ordering::Release);\n    if true || obj\n        .cas_word(\n            LockWord::owned_by(me),\n            LockWord::BIASABLE,",
        "fresh_release_races_the_first_contender",
    ),
    (
        "the release forgets the wake-up",
        "src/protocol/release.rs",
        "    let old = obj.swap_word(LockWord::FREE, Ordering::Release);\n    if old.has_waiters() {\n        obj.wake(1);\n    }\n    Ok(())",
        "    let _ = obj.swap_word(LockWord::FREE, Ordering::Release);\n    Ok(())",
        "three_contenders_exclude_each_other_and_all_finish",
    ),
    (
        "a sleeper does not announce itself (no WAITERS)",
        "src/protocol/sleep.rs",
        "    let expected = cur.with_waiters();\n    if !cur.has_waiters()",
        "    let expected = cur;\n    if false",
        "three_contenders_exclude_each_other_and_all_finish",
    ),
    (
        "an owner that died before writing COUNT counts as not holding",
        "src/protocol/acquire.rs",
        "    let abandoned = !biased || bias::dead_holder_held(obj);",
        "    let abandoned = (!biased || bias::dead_holder_held(obj))\n        && obj.count().load(Ordering::Relaxed) > 0;",
        "abandonment_after_the_owners_cas_is_reported_once",
    ),
    (
        "the release frees the word before its last step",
        "src/protocol/release.rs",
        '    H::crash_point("unlock.before_swap");\n    if obj.fresh()',
        '    let _ = obj.swap_word(LockWord::FREE, Ordering::Release);\n    H::crash_point("unlock.before_swap");\n    if obj.fresh()',
        "abandonment_in_a_release_is_reported_once",
    ),
    (
        "giving a mutex up frees it instead of marking it ABANDONED",
        "src/protocol/release.rs",
        "        cur.keep_waiters(LockWord::ABANDONED),",
        "        cur.keep_waiters(LockWord::FREE),",
        "a_mutex_given_up_is_reported_once",
    ),
    (
        "the release writes the owner's word back instead of FREE",
        "src/protocol/release.rs",
        "    let old = obj.swap_word(LockWord::FREE, Ordering::Release);\n    if old.has_waiters() {\n        obj.wake(1);\n    }\n    Ok(())",
        "    let old = obj.swap_word(cur, Ordering::Release);\n    if old.has_waiters() {\n        obj.wake(1);\n    }\n    Ok(())",
        "a_death_after_release_abandons_nothing",
    ),
    (
        "wait-any keeps a wake-up it did not use",
        "src/protocol/multi.rs",
        "                    if slept {\n                        pass_on(objs, |j| j != i);\n                    }",
        "                    if slept && false {\n                        pass_on(objs, |j| j != i);\n                    }",
        "wait_any_passes_on_a_wake_up_it_did_not_use",
    ),
    (
        "a dead biased thread counts as holding whatever its depth",
        "src/protocol/bias.rs",
        "    obj.bias_depth().load(Ordering::Acquire) > 0\n}",
        "    let _ = obj.bias_depth().load(Ordering::Acquire);\n    true\n}",
        "a_biased_owner_is_abandoned_only_if_it_held_the_mutex",
    ),
]


def main() -> int:
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    survived = []
    for name, rel, old, new, test in MUTATIONS:
        if only not in name:
            continue
        path = ROOT / rel
        original = path.read_text()
        if original.count(old) != 1:
            print(f"!! {name}: the text to replace is not in {rel} exactly once")
            return 2
        path.write_text(original.replace(old, new))
        try:
            print(f"-- {name}: running {test}", flush=True)
            run = subprocess.run(
                ["cargo", "test", "-q", "--lib", f"protocol::model::tests::{test}", "--", "--exact"],
                cwd=ROOT, capture_output=True, text=True, timeout=900,
            )
            output = run.stdout + run.stderr
            caught = run.returncode != 0 and "error[E" not in output
            # A panic's message is on the line after "panicked at".
            lines = [l.strip() for l in output.replace("panicked at", "panicked at\n").splitlines()]
            lines = [l for l in lines if l and not l.endswith("panicked at")]
            why = next(
                (l for l in lines
                 if any(k in l for k in ("deadlock", "assertion", "Causality"))),
                next((l for l in lines if "panicked" in l), "exit status %d" % run.returncode),
            )
            print(f"   {'caught' if caught else 'SURVIVED'}: {why[:160]}", flush=True)
            if not caught:
                survived.append(name)
        finally:
            path.write_text(original)
    if survived:
        print("survived:", ", ".join(survived))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
