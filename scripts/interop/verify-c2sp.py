#!/usr/bin/env python3
"""Checks the journal's published artefacts with an independent implementation of
the C2SP formats and RFC 9162 algorithms (the aics-tlog package, not our code):

  verify-c2sp.py --vkey VKEY [--vkey VKEY…] [--tiles DIR] [--proof FILE]
                 [--consistency FILE --old-checkpoint FILE] [--export DIR] [--history DIR]

--vkey VKEY        a verifier key of the log; repeat it for every key of a log that has
                   rolled its signing key over: a checkpoint passes when one of them
                   signed it
--tiles DIR        a `osmosectl journal tiles` tree: the checkpoint's signature, then
                   every hash tile and entry bundle authenticated against its root
--proof FILE       a c2sp.org/tlog-proof@v1 proof (`osmosectl journal prove inclusion`);
                   the entry itself is read from --tiles
--consistency FILE a tlog-witness add-checkpoint body (`prove consistency`), checked
                   against the old checkpoint in --old-checkpoint
--export DIR       an `osmosectl journal export --format bundle` directory: every entry
                   of the bundle proven included in the covering checkpoint
--pack DIR         the journal/ folder of a subject-access pack (`osmosectl dsar export`):
                   `proofs` (one tlog-proof per access) and `leaf-hashes` ("SEQ base64"
                   per line): each leaf hash proven included in the signed checkpoint; when
                   `entries` is there too (staff named), each entry hashes to its leaf
--history DIR      every checkpoint of the log in order, as DIR/NNNNNN.note, and
                   DIR/NNNNNN.consistency (`prove consistency`) from the one before:
                   each signed by one of the keys, each consistent with the previous

Prints one line per check and exits 1 at the first failure."""
import argparse
import base64
import sys

import aics_tlog


def fail(message):
    print(f"FAIL {message}")
    sys.exit(1)


def checkpoint(note_text, vkeys):
    """The checkpoint, verified by the first of the log's keys that signed it."""
    errors = []
    for vkey in vkeys:
        result = aics_tlog.verify_checkpoint(aics_tlog.parse_note(note_text), vkey)
        if result.ok:
            return result
        errors.append(str(result.error))
    fail(f"checkpoint signature: no known key verifies it ({'; '.join(errors)})")


def signers(note_text, vkeys):
    """How many of the log's keys signed the note."""
    return sum(1 for vkey in vkeys if aics_tlog.verify_checkpoint(aics_tlog.parse_note(note_text), vkey).ok)


def split_proof(text, first_line):
    head, _, note = text.partition("\n\n")
    lines = head.split("\n")
    if lines[0] != first_line:
        fail(f"expected a first line {first_line!r}, got {lines[0]!r}")
    return lines[1:], note


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vkey", required=True, action="append")
    parser.add_argument("--tiles")
    parser.add_argument("--proof")
    parser.add_argument("--consistency")
    parser.add_argument("--old-checkpoint")
    parser.add_argument("--export")
    parser.add_argument("--pack")
    parser.add_argument("--history")
    args = parser.parse_args()
    vkey = [aics_tlog.parse_vkey(text) for text in args.vkey]
    reader = None

    if args.tiles:
        reader = aics_tlog.FileSystemTileReader(args.tiles)
        head = checkpoint(open(f"{args.tiles}/checkpoint").read(), vkey)
        report = aics_tlog.audit_tiles(reader, head.size, head.root, entries=True)
        if aics_tlog.tree_root_from_tiles(reader, head.size) != head.root:
            fail("tiles: root differs")
        print(f"ok tiles: checkpoint signed by a log key, size {head.size}, "
              f"{report.tiles} hash tiles and {report.bundles} entry bundles authenticated against its root")

    if args.proof:
        lines, note = split_proof(open(args.proof).read(), "c2sp.org/tlog-proof@v1")
        lines = [line for line in lines if not line.startswith("extra ")]
        if not lines[0].startswith("index "):
            fail("tlog-proof: no index line")
        index = int(lines[0][6:])
        hashes = [base64.b64decode(line) for line in lines[1:]]
        head = checkpoint(note, vkey)
        if reader is None:
            fail("--proof needs --tiles to read the entry")
        entry = aics_tlog.read_entry(reader, index, head.size)
        if not aics_tlog.verify_leaf_inclusion(entry, index, head.size, hashes, head.root):
            fail(f"inclusion of entry {index}")
        print(f"ok inclusion: entry {index} ({len(entry)} bytes) is in the tree of size {head.size} ({len(hashes)} hashes)")

    if args.consistency:
        lines, note = split_proof(open(args.consistency).read(), open(args.consistency).read().split("\n")[0])
        first = open(args.consistency).read().split("\n")[0]
        if not first.startswith("old "):
            fail("add-checkpoint body: no old line")
        old_size = int(first[4:])
        hashes = [base64.b64decode(line) for line in lines]
        new = checkpoint(note, vkey)
        old = checkpoint(open(args.old_checkpoint).read(), vkey)
        if old.size != old_size:
            fail(f"the body says old size {old_size}, the old checkpoint has {old.size}")
        if not aics_tlog.verify_consistency(old.size, new.size, old.root, new.root, hashes):
            fail(f"consistency {old.size} -> {new.size}")
        print(f"ok consistency: size {old.size} is a prefix of size {new.size} ({len(hashes)} hashes)")

    if args.export:
        bundle = open(f"{args.export}/entries", "rb").read()
        entries, offset = [], 0
        while offset < len(bundle):
            length = int.from_bytes(bundle[offset:offset + 2], "big")
            entries.append(bundle[offset + 2:offset + 2 + length])
            offset += 2 + length
        proofs = open(f"{args.export}/proofs").read().split("--\n")
        if len(proofs) != len(entries):
            fail(f"export: {len(entries)} entries but {len(proofs)} proofs")
        for entry, proof in zip(entries, proofs):
            lines, note = split_proof(proof, "c2sp.org/tlog-proof@v1")
            index = int(lines[0][6:])
            head = checkpoint(note, vkey)
            if not aics_tlog.verify_leaf_inclusion(entry, index, head.size, [base64.b64decode(h) for h in lines[1:]], head.root):
                fail(f"export: entry {index} not included")
        print(f"ok export: {len(entries)} entries each proven included in the checkpoint of size {head.size}")

    if args.pack:
        leaves = [line.split(" ") for line in open(f"{args.pack}/leaf-hashes").read().splitlines() if line]
        text = open(f"{args.pack}/proofs").read()
        proofs = text.split("--\n") if text else []
        if len(proofs) != len(leaves):
            fail(f"pack: {len(leaves)} leaf hashes but {len(proofs)} proofs")
        import os
        entries = None
        if os.path.exists(f"{args.pack}/entries"):
            bundle, entries, offset = open(f"{args.pack}/entries", "rb").read(), [], 0
            while offset < len(bundle):
                length = int.from_bytes(bundle[offset:offset + 2], "big")
                entries.append(bundle[offset + 2:offset + 2 + length])
                offset += 2 + length
            if len(entries) != len(leaves):
                fail(f"pack: {len(leaves)} leaf hashes but {len(entries)} entries")
        head = checkpoint(open(f"{args.pack}/checkpoint").read(), vkey)
        for position, ((sequence, leaf), proof) in enumerate(zip(leaves, proofs)):
            lines, note = split_proof(proof, "c2sp.org/tlog-proof@v1")
            index = int(lines[0][6:])
            if index != int(sequence):
                fail(f"pack: proof {position} is for entry {index}, the leaf for {sequence}")
            if note != open(f"{args.pack}/checkpoint").read():
                fail(f"pack: proof {position} is against another checkpoint")
            leaf_hash = base64.b64decode(leaf)
            if entries is not None and aics_tlog.leaf_hash(entries[position]) != leaf_hash:
                fail(f"pack: entry {sequence} does not hash to its leaf")
            if not aics_tlog.verify_inclusion(leaf_hash, index, head.size, [base64.b64decode(h) for h in lines[1:]], head.root):
                fail(f"pack: entry {sequence} not included")
        print(f"ok pack: {len(leaves)} accesses each proven included in the checkpoint of size {head.size}"
              f"{' (entries hash to their leaves)' if entries is not None else ''}")

    if args.history:
        import os
        names = sorted(name for name in os.listdir(args.history) if name.endswith(".note"))
        if not names:
            fail("history: no checkpoint")
        previous, cosigned = None, 0
        for name in names:
            text = open(f"{args.history}/{name}").read()
            head = checkpoint(text, vkey)
            cosigned += signers(text, vkey) > 1
            if previous is not None and previous.size > 0:
                body = open(f"{args.history}/{name[:-5]}.consistency").read()
                lines, _ = split_proof(body, body.split("\n")[0])
                if int(body.split("\n")[0][4:]) != previous.size:
                    fail(f"history {name}: the consistency proof starts from size {body.split(chr(10))[0][4:]}, not {previous.size}")
                hashes = [base64.b64decode(line) for line in lines]
                if not aics_tlog.verify_consistency(previous.size, head.size, previous.root, head.root, hashes):
                    fail(f"history {name}: size {previous.size} is not a prefix of size {head.size}")
            previous = head
        print(f"ok history: {len(names)} checkpoints each signed by one of {len(vkey)} keys ({cosigned} by two or more), each consistent with the previous")


main()
