"""Submit-time checks of a data-prep stage's inputs: fail in a second on the login node, not on a node.

What can be known before a job starts is checked here with the node's own readers (so the two can
never disagree about what a valid input is): every ``data.inputs`` path exists and every glob
matches a supported file (``expand_inputs``), the tokenizer loads (``resolve_spec`` +
``get_tokenizer``), and the first rows of each dataset's first file parse and carry the fields the
stage reads (``split_file`` + ``ChunkReader``). Each problem is one ``UserError`` line (exit 2). The
node repeats all of it at run time (files can change in between); this is the early answer, not
the only one.
"""

from __future__ import annotations

from typing import Any

from nemotron.errors import UserError

SAMPLE_BYTES = 64 << 10  # the first piece read per dataset: enough rows to judge, cheap on any file
SAMPLE_ROWS = 20


def required_fields(stage: str, cfg: Any) -> dict[str, str]:
    """``{field name: config key that names it}`` the stage reads from every input row."""
    data = cfg.data
    if stage == "data_prep.pretrain":
        return {data.text_field: "data.text_field"}
    if stage == "data_prep.sft":
        return {data.messages_field: "data.messages_field"}
    return {data.prompt_field: "data.prompt_field", data.answer_field: "data.answer_field"}


def first_rows(file: Any, fields: list[str]) -> tuple[int, list[dict[str, Any]]]:
    """(rows seen, parsed records) of the first piece of ``file`` (at most ``SAMPLE_ROWS`` records)."""
    from nemotron.data_prep.sources import BadRows, ChunkReader, split_file

    piece = split_file(file, SAMPLE_BYTES)[0]
    reader = ChunkReader(piece, fields, BadRows(), batch_rows=SAMPLE_ROWS)
    records: list[dict[str, Any]] = []
    for chunk, _ in reader.chunks():
        records.extend(record for _, record in chunk)
        if len(records) >= SAMPLE_ROWS or reader.rows >= SAMPLE_ROWS:
            break
    return reader.rows, records[:SAMPLE_ROWS]


def check_rows(stage: str, cfg: Any, datasets: list[Any]) -> None:
    """The first rows of each dataset's first file parse as objects and have the stage's fields
    (dotted fields, e.g. ``meta.text``, looked up as the stage does: ``sources.get_field``)."""
    from nemotron.data_prep.sources import MISSING, get_field

    wanted = required_fields(stage, cfg)
    for ds in datasets:
        first = ds.files[0]
        try:
            rows, records = first_rows(first, list(wanted))
        except UserError:
            raise
        except (OSError, ValueError, EOFError) as exc:
            raise UserError(
                f"data.inputs[{ds.index}]: cannot read {first.path} as {first.format}: {str(exc)[:160]}",
                hint="check that the file is complete and in the format its name says",
            ) from None
        if rows and not records:
            raise UserError(
                f"data.inputs[{ds.index}]: the first {rows} row(s) of {first.path} are not JSON objects",
                hint="inputs hold one JSON object per line (or Parquet rows)",
            )
        for field, key in wanted.items():
            if records and not any(get_field(record, field) is not MISSING for record in records):
                seen = sorted({k for record in records for k in record})[:8]
                raise UserError(
                    f"data.inputs[{ds.index}]: the first {len(records)} row(s) of {first.path} have no '{field}' "
                    f"field (they have: {', '.join(seen) or 'nothing'})",
                    hint=f"set {key}=<the field that holds it>",
                )


def check_tokenizer(cfg: Any) -> None:
    """The tokenizer file exists and loads with the library the node will use."""
    section = getattr(cfg, "tokenizer", None)
    if section is None:
        return
    from nemotron.data_prep.tokenizer import get_tokenizer, resolve_spec

    spec = resolve_spec(section)
    try:
        get_tokenizer(spec)
    except UserError:
        raise
    except Exception as exc:  # tiktoken/tokenizers raise plain errors on a wrong or damaged file
        raise UserError(
            f"tokenizer {spec.path} does not load as {spec.kind}: {str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}",
            hint="point tokenizer.path at an HF tokenizer.json (or its directory) or a tiktoken rank file; "
            "set tokenizer.kind if the detection guessed wrong",
        ) from None


def check_data_prep_inputs(stage: str, data: dict[str, Any]) -> None:
    """Every submit-time check of a data-prep stage's resolved config ``data`` (relative paths: cwd)."""
    from nemotron.config.schemas.data_prep import SCHEMAS
    from nemotron.data_prep.common import validate
    from nemotron.data_prep.sources import expand_inputs

    if stage not in SCHEMAS:
        return
    cfg = validate(data, SCHEMAS[stage])
    datasets = expand_inputs(cfg.data.inputs)
    check_tokenizer(cfg)
    check_rows(stage, cfg, datasets)
