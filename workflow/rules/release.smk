# Released weights instead of training (params `release`): the tokenizer, and each generator scale that
# `release.generators` names, are imported from local files into the paths the training rules would write, so
# sampling, evaluation and the report run unchanged. release256 and llamagen256 import everything; ctf256 imports
# only LlamaGen's tokenizer and trains its generators on its codes. The import rules win over training where both
# could make a file.

if "release" in P:
    REL = P["release"]
    RELEASED = {  # what goes where, by tokenizer family (docs/tokenizers.md)
        "alitok": ("the released stage-2 tokenizer AliTok.pth", "a released generator (alitok_b.bin, alitok_l.bin or alitok_xl.bin)"),
        "vq16": ("LlamaGen's released VQ-16 tokenizer vq_ds16_c2i.pt", "a released LlamaGen GPT (c2i_B_256.pt or c2i_L_256.pt)"),
    }[P["tokenizer"].get("family", "alitok")]

    rule import_tokenizer:
        input:
            local_file(REL["tokenizer"], "release.tokenizer", RELEASED[0]),
        output:
            final_tokenizer(),
        params:
            **command("import-tokenizer"),
        threads: torch_threads("import_tokenizer")
        resources:
            **job_resources("import_tokenizer"),
        log:
            f"{LOGS}/import_tokenizer.log",
        shell:
            CALL + " {input} --out {output}"

if imports_generators(P):

    for run, path in REL["generators"].items():  # every missing file listed at once (common.smk, MISSING)
        local_file(path, f"release.generators.{run}", RELEASED[1])

    rule import_generator:
        input:
            lambda wildcards: REL["generators"][wildcards.run],
        output:
            f"{OUT}/generator/{{run}}/model.pt",
        wildcard_constraints:
            run="|".join(REL["generators"]),
        params:
            **command("import-generator"),
            size=lambda wildcards: P["generator"]["scales"][wildcards.run].get("size", ""),
        threads: torch_threads("import_generator")
        resources:
            **job_resources("import_generator"),
        log:
            f"{LOGS}/import_generator_{{run}}.log",
        shell:
            CALL + " {input} --out {output} --size {params.size}"
