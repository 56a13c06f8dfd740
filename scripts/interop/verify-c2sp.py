#!/usr/bin/env python3
"""Checks the journal's published artefacts with an independent implementation of
the C2SP formats and RFC 9162 algorithms (the aics-tlog package, not our code):

  verify-c2sp.py --vkey VKEY [--vkey VKEY…] [--tiles DIR] [--proof FILE]
                 [--consistency FILE --old-checkpoint FILE] [--export DIR] [--history DIR]
                 [--archive DIR]

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
--archive DIR      a cold archive of a journal month, decrypted and extracted
                   (age -d … | bsdtar -xf - -C DIR): DIR/journal-YYYY-MM/. Its covering
                   checkpoint signed by a log key; its hash tiles authenticated against
                   that checkpoint's root (aics-tlog's VerifiedTileReader); every entry of
                   the month hashed as a leaf and found at its index; every other
                   checkpoint signed, and its root recomputed from the tiles; the hash
                   chain from chain_before through every checkpoint inside the month to
                   chain_after; every file against manifest.json's SHA-256

Prints one line per check and exits 1 at the first failure."""
import argparse
import base64
import hashlib
import json
import os
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
    parser.add_argument("--archive")
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

    if args.archive:
        verify_archive(args.archive, vkey)


def split_notes(text):
    """The notes of a log where each note is followed by one empty line."""
    notes, current, in_signatures = [], [], False
    for line in text.split("\n")[:-1]:
        if not in_signatures:
            current.append(line)
            in_signatures = line == ""
        elif line == "":
            notes.append("\n".join(current) + "\n")
            current, in_signatures = [], False
        else:
            current.append(line)
    if current:
        fail("archive: the checkpoints file ends inside a note")
    return notes


def bundle_index(relative):
    """N from a tile-style path such as x001/234."""
    parts = relative.split("/")
    return int("".join(part[1:] if part.startswith("x") else part for part in parts))


def verify_archive(directory, vkey):
    months = [name for name in os.listdir(directory) if name.startswith("journal-")]
    if len(months) != 1:
        fail(f"archive: expected one journal-YYYY-MM directory in {directory}, found {months}")
    root = os.path.join(directory, months[0])
    manifest = json.load(open(f"{root}/manifest.json"))
    for member in manifest["members"]:
        path = os.path.join(directory, member["path"])
        data = open(path, "rb").read()
        if len(data) != member["size"] or hashlib.sha256(data).hexdigest() != member["sha256"]:
            fail(f"archive: {member['path']} differs from manifest.json")
    month = json.load(open(f"{root}/month.json"))
    first, last = month["first_sequence"], month["last_sequence"]
    head = checkpoint(open(f"{root}/checkpoint").read(), vkey)
    if head.size != month["covering"]["size"] or head.size <= last:
        fail("archive: the covering checkpoint does not cover the month")
    tiles = aics_tlog.FileSystemTileReader(root)
    verified = aics_tlog.VerifiedTileReader(tiles, head.size, head.root)
    verified.check_root()
    count, seen = 0, []
    bundles = sorted(
        (bundle_index(os.path.relpath(os.path.join(path, name), f"{root}/entries")), os.path.join(path, name))
        for path, _, names in os.walk(f"{root}/entries") for name in names)
    chain = base64.b64decode(month["chain_before"])
    chains = {}
    for index, path in bundles:
        for entry in aics_tlog.tiles.parse_entry_bundle(open(path, "rb").read()):
            sequence = first + count
            if sequence // 256 != index:
                fail(f"archive: entry {sequence} is not in bundle {index}")
            leaf = aics_tlog.leaf_hash(entry)
            if verified.leaf_hash(sequence) != leaf:
                fail(f"archive: entry {sequence} is not the leaf at its index in the covering checkpoint's tree")
            if int.from_bytes(entry[1:9], "big") != sequence:
                fail(f"archive: the entry at {sequence} names another sequence number")
            chain = hashlib.sha256(chain + leaf).digest()
            chains[sequence + 1] = chain
            count += 1
    if count != last - first + 1:
        fail(f"archive: {count} entries, month.json says {last - first + 1}")
    if base64.b64encode(chain).decode() != month["chain_after"]:
        fail("archive: the hash chain does not end at chain_after")
    notes = split_notes(open(f"{root}/checkpoints").read())
    if len(notes) != month["checkpoint_count"] or notes[-1] != open(f"{root}/checkpoint").read():
        fail("archive: the checkpoints file does not end with the covering checkpoint")
    for note in notes:
        signed = checkpoint(note, vkey)
        if tiles_root(tiles, signed.size, head.size) != signed.root:
            fail(f"archive: the tiles do not give the root of the checkpoint of size {signed.size}")
        extension = [line for line in note.split("\n") if line.startswith("osmose-chain ")]
        if signed.size in chains and (not extension or base64.b64decode(extension[0][13:]) != chains[signed.size]):
            fail(f"archive: the chain differs from the checkpoint of size {signed.size}'s osmose-chain")
    print(f"ok archive: {month['month']} of {month['origin']}, entries {first}…{last} ({count}) each found at its index in the "
          f"tree of size {head.size} whose tiles give the signed root; {len(notes)} checkpoints each signed and matching the tiles and the chain; "
          f"{len(manifest['members'])} files match manifest.json")


def tiles_root(reader, size, tile_size):
    return aics_tlog.tree_root_from_tiles(reader, size, tile_size=tile_size)


main()
