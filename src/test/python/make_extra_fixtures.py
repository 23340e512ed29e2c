"""More reference data for BLIP-2 OPT parity, made with transformers on small random models, in the layout of
the shared fixtures (see src/test/resources/fixtures/README.md). Runs where torch and transformers are installed
(the device machine): python3 make_extra_fixtures.py; writes $OUT/extra-fixtures.tar.gz.

Variants the shared fixtures do not cover:
- opt-projio-postln-f16: word_embed_proj_dim != hidden (project_in/project_out), post-LN OPT layers (like
  opt-350m), vision patch 16 without qkv bias, cross-attention in every Q-Former layer, weights stored as F16;
- opt-bf16-sharded-eos: weights stored as BF16 in several shards, an EOS token the model does produce, so greedy
  and beam search stop early; more generation settings (repetition penalty, min_new_tokens, length penalty,
  early stopping) and a left-padded batch.
References are computed in float32 from weights already rounded to the stored precision, so they are exact
targets.
"""
import os, json, math, random, tarfile, tempfile, shutil, traceback
import torch
import transformers
from transformers import Blip2Config, Blip2ForConditionalGeneration, PreTrainedTokenizerFast
from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders, processors
from PIL import Image, ImageDraw
from safetensors.torch import save_file

OUT = os.environ.get("OUT") or tempfile.mkdtemp()
WORK = tempfile.mkdtemp()
print("torch", torch.__version__, "transformers", transformers.__version__, flush=True)

COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
SHAPES = ["circle", "square", "triangle", "star", "cross"]
PLACES = ["on the left", "on the right", "at the top", "at the bottom", "in the middle"]


def corpus():
    out = []
    for c in COLORS:
        for s in SHAPES:
            for p in PLACES:
                out += [f"a {c} {s} {p}", f"a photo of a {c} {s} {p} of the picture",
                        f"Question: what color is the {s}? Answer: {c}"]
    return out + ["two cats laying on a couch", "a dog running in the grass", "how many objects are there?"]


def bpe_tokenizer(vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), tr)
    tok.post_processor = processors.TemplateProcessing(single="</s> $A", pair="</s> $A </s> $B",
                                                       special_tokens=[("</s>", 2)])
    return tok


def draw_image(seed, w, h, mode="RGB"):
    rnd = random.Random(seed)
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = (int(255 * x / w), int(255 * y / h), (x * y + seed) % 256)
    d = ImageDraw.Draw(img)
    for _ in range(5):
        x0, y0 = rnd.randrange(max(1, w // 2)), rnd.randrange(max(1, h // 2))
        col = tuple(rnd.randrange(256) for _ in range(3))
        if rnd.random() < 0.5:
            d.ellipse([x0, y0, x0 + w // 3, y0 + h // 3], fill=col)
        else:
            d.rectangle([x0, y0, x0 + w // 4, y0 + h // 4], fill=col, outline=(0, 0, 0))
    if mode == "RGB":
        return img
    if mode == "RGBA" or mode == "LA":
        a = Image.new("L", (w, h))
        ap = a.load()
        for y in range(h):
            for x in range(w):
                ap[x, y] = (x * 5 + y * 11) % 256
        base = img if mode == "RGBA" else img.convert("L")
        base.putalpha(a)
        return base
    if mode == "P":
        return img.convert("P", palette=Image.ADAPTIVE, colors=37)
    return img.convert(mode)


def randomize(model, seed, branch_scale=1.0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1:
                base = 1.0 if ("norm" in n.lower() or "LayerNorm" in n) and n.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            else:
                std = 1.0 / math.sqrt(p.shape[-1])
                if "embed" in n or "query_tokens" in n or "class_embedding" in n:
                    std = 0.5
                if any(t in n for t in ("out_proj", "fc2")) and "language_model" in n:
                    std *= branch_scale
                p.copy_(std * torch.randn(p.shape, generator=g))
    model.tie_weights()


def round_to(model, dtype):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))


def image_processor():
    from transformers import BlipImageProcessorPil as cls
    return cls(do_resize=True, size={"height": 224, "width": 224}, resample=3, do_rescale=True, rescale_factor=1 / 255,
               do_normalize=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
               image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)


def sub(model, name):
    """A submodule or parameter by its last name, whatever nesting this transformers version uses."""
    if hasattr(model, name):
        return getattr(model, name)
    for n, m in model.named_modules():
        if n.split(".")[-1] == name:
            return m
    for n, p in model.named_parameters():
        if n.split(".")[-1] == name:
            return p
    raise AttributeError(name)


def until_eos(new, eos):
    return new[:new.index(eos) + 1] if eos in new else new


def margins(scores):
    m = []
    for s in scores:
        v, _ = torch.topk(s[0].float(), 2)
        m.append(float(v[0] - v[1]))
    return m


def make(name, seed, vision, qformer, text, queries, images, prompts, store_dtype, shard, extra_gen, pick_eos):
    d = os.path.join(WORK, name); md = os.path.join(d, "model"); os.makedirs(md)
    torch.manual_seed(seed)
    tok = bpe_tokenizer(400)
    tok.add_special_tokens(["<image>"])
    img_id = tok.token_to_id("<image>")
    V = tok.get_vocab_size()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="</s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    text_cfg = dict(model_type="opt", vocab_size=V, max_position_embeddings=128, bos_token_id=2, eos_token_id=2,
                    pad_token_id=1, enable_bias=True, dropout=0.0, attention_dropout=0.0, activation_function="relu", **text)
    cfg = Blip2Config(vision_config=dict(image_size=224, layer_norm_eps=1e-6, **vision),
                      qformer_config=dict(vocab_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                                          attention_probs_dropout_prob=0.0, **qformer),
                      text_config=text_cfg, num_query_tokens=queries)
    for k in ("image_token_index", "image_token_id"):
        try:
            setattr(cfg, k, img_id)
        except Exception as e:
            print("cannot set", k, e)
    model = Blip2ForConditionalGeneration(cfg).eval().float()
    randomize(model, seed, 2.0)
    round_to(model, store_dtype)
    proc = image_processor()
    pil = []
    for i, spec in enumerate(images):
        fn = f"image{i}." + ("jpg" if spec[-1] == "JPEG" else "png")
        if spec[-1] == "JPEG":
            draw_image(spec[0], spec[1], spec[2], "RGB").save(os.path.join(d, fn), quality=90)
        else:
            draw_image(*spec).save(os.path.join(d, fn))
        pil.append((fn, Image.open(os.path.join(d, fn))))
    eos = 2
    if pick_eos:
        # an EOS the model does produce: the 4th greedy token of the first case
        px = proc(images=pil[0][1], return_tensors="pt")["pixel_values"]
        ids = torch.tensor([[img_id] * queries + [2]])
        g = model.generate(pixel_values=px, input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
        eos = int(g[0, ids.shape[1] + 3])
        model.config.text_config.eos_token_id = eos
        model.generation_config.eos_token_id = eos
        print(name, "eos", eos, flush=True)
    tensors, cases = {}, []
    for i, (fn, img) in enumerate(pil):
        px = proc(images=img, return_tensors="pt")["pixel_values"]
        for j, p in enumerate(prompts):
            ids = [2] if p is None else hf_tok(p, add_special_tokens=True)["input_ids"]
            full = [img_id] * queries + ids
            input_ids = torch.tensor([full]); attn = torch.ones_like(input_ids)
            n = f"img{i}_p{j}"
            with torch.no_grad():
                vis = sub(model, "vision_model")(pixel_values=px).last_hidden_state
                qf = sub(model, "qformer")(query_embeds=sub(model, "query_tokens").expand(1, -1, -1), encoder_hidden_states=vis,
                                   encoder_attention_mask=torch.ones(vis.shape[:-1], dtype=torch.long)).last_hidden_state
                proj = sub(model, "language_projection")(qf)
                logits = model(pixel_values=px, input_ids=input_ids, attention_mask=attn).logits
                gen = {}
                for key, kw in [("greedy", dict(max_new_tokens=12, num_beams=1)), ("beam3", dict(max_new_tokens=8, num_beams=3))] + extra_gen:
                    out = model.generate(pixel_values=px, input_ids=input_ids, attention_mask=attn, do_sample=False,
                                         output_scores=True, return_dict_in_generate=True, eos_token_id=eos, **kw)
                    seq = out.sequences[0].tolist()
                    new = until_eos(seq[len(full):] if seq[:len(full)] == full else seq, eos)
                    gen[key] = {"kwargs": kw, "new_tokens": new,
                                "top2_margins": margins(out.scores) if kw.get("num_beams", 1) == 1 else None}
            tensors[f"{n}.pixel_values"] = px.clone().contiguous()
            tensors[f"{n}.vision_last_hidden_state"] = vis.contiguous()
            tensors[f"{n}.qformer_last_hidden_state"] = qf.contiguous()
            tensors[f"{n}.language_projection"] = proj.contiguous()
            tensors[f"{n}.logits"] = logits.contiguous()
            cases.append({"name": n, "image": fn, "prompt": p, "text_input_ids": ids, "model_input_ids": full,
                          "greedy_new_tokens": gen["greedy"]["new_tokens"], "beam3_new_tokens": gen["beam3"]["new_tokens"],
                          "greedy_top2_margins": gen["greedy"]["top2_margins"], "generate": gen})
    # a left-padded batch of every image with the longest and the shortest prompt
    batch = []
    texts = [prompts[k % len(prompts)] for k in range(len(pil))]
    rows = [[img_id] * queries + ([2] if t is None else hf_tok(t)["input_ids"]) for t in texts]
    L = max(len(r) for r in rows)
    input_ids = torch.tensor([[1] * (L - len(r)) + r for r in rows])
    attn = torch.tensor([[0] * (L - len(r)) + [1] * len(r) for r in rows])
    pxs = torch.cat([proc(images=img, return_tensors="pt")["pixel_values"] for _, img in pil])
    with torch.no_grad():
        for key, kw in [("greedy", dict(max_new_tokens=12, num_beams=1)), ("beam3", dict(max_new_tokens=8, num_beams=3))]:
            out = model.generate(pixel_values=pxs, input_ids=input_ids, attention_mask=attn, do_sample=False,
                                 eos_token_id=eos, **kw)
            # rows that stopped early are padded with pad_token_id after their EOS
            news = [until_eos(out[r, L:].tolist(), eos) for r in range(len(rows))]
            batch.append({"kwargs": kw, "images": [fn for fn, _ in pil], "prompts": texts, "new_tokens": news})
    model_to_save = model.to(store_dtype)
    model_to_save.save_pretrained(md, safe_serialization=True, **({"max_shard_size": shard} if shard else {}))
    hf_tok.save_pretrained(md); tok.save(os.path.join(md, "tokenizer.json"))
    proc.save_pretrained(md)
    save_file(tensors, os.path.join(d, "expected.safetensors"))
    json.dump({"reference": f"transformers {transformers.__version__}, torch {torch.__version__}, float32 on weights rounded to {store_dtype}, CPU",
               "language_model": "opt", "image_token_id": img_id, "eos_token_id": eos, "vocab_size": V,
               "images": [fn for fn, _ in pil], "prompts": prompts, "cases": cases, "batch": batch},
              open(os.path.join(d, "expected.json"), "w"), indent=1)
    print("made", name, [c["greedy_new_tokens"] for c in cases], flush=True)



def unigram_tokenizer(vocab_size):
    tok = Tokenizer(models.Unigram())
    from tokenizers import normalizers
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tr = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
                                 show_progress=False)
    tok.train_from_iterator(corpus(), tr)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    return tok


def wordpiece_tokenizer(vocab_size):
    from tokenizers import normalizers
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tr = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                   show_progress=False)
    tok.train_from_iterator(corpus(), tr)
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return tok


def make_t5(name, seed, images, prompts, extra_gen):
    """FlanT5 variant: inner dim != d_model, three layers (transformers 5 cannot decode with num_decoder_layers != num_layers), 16 buckets over a distance of 20
    (prompts longer than that), a separate lm_head, an EOS the model produces."""
    d = os.path.join(WORK, name); md = os.path.join(d, "model"); os.makedirs(md)
    torch.manual_seed(seed)
    tok = unigram_tokenizer(120)
    tok.add_special_tokens(["<image>"])
    img_id = tok.token_to_id("<image>")
    V = tok.get_vocab_size()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    text_cfg = dict(model_type="t5", vocab_size=V, d_model=48, d_kv=16, d_ff=96, num_layers=3, num_decoder_layers=3,
                    num_heads=4, relative_attention_num_buckets=16, relative_attention_max_distance=20,
                    feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0,
                    pad_token_id=0, eos_token_id=1, dropout_rate=0.0)
    cfg = Blip2Config(vision_config=dict(image_size=224, layer_norm_eps=1e-6, hidden_size=48, intermediate_size=96,
                                         num_hidden_layers=2, num_attention_heads=4, patch_size=16, qkv_bias=True),
                      qformer_config=dict(vocab_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                                          attention_probs_dropout_prob=0.0, hidden_size=48, num_hidden_layers=2,
                                          num_attention_heads=4, intermediate_size=96, cross_attention_frequency=1),
                      text_config=text_cfg, num_query_tokens=6)
    for k in ("image_token_index", "image_token_id"):
        try:
            setattr(cfg, k, img_id)
        except Exception as e:
            print("cannot set", k, e)
    model = Blip2ForConditionalGeneration(cfg).eval().float()
    randomize(model, seed, 2.0)
    proc = image_processor()
    pil = []
    for i, spec in enumerate(images):
        fn = f"image{i}.png"
        draw_image(*spec).save(os.path.join(d, fn))
        pil.append((fn, Image.open(os.path.join(d, fn))))
    # an EOS the model produces: the 3rd greedy token of the first case
    px = proc(images=pil[0][1], return_tensors="pt")["pixel_values"]
    ids = torch.tensor([[img_id] * 6 + hf_tok(prompts[0])["input_ids"]])
    g = model.generate(pixel_values=px, input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
    eos = int(g[0, 3])
    model.config.text_config.eos_token_id = eos
    model.generation_config.eos_token_id = eos
    print(name, "eos", eos, g[0].tolist(), flush=True)
    tensors, cases = {}, []
    for i, (fn, img) in enumerate(pil):
        px = proc(images=img, return_tensors="pt")["pixel_values"]
        for j, p in enumerate(prompts):
            tids = hf_tok(p, add_special_tokens=True)["input_ids"]
            full = [img_id] * 6 + tids
            input_ids = torch.tensor([full]); attn = torch.ones_like(input_ids)
            n = f"img{i}_p{j}"
            with torch.no_grad():
                vis = sub(model, "vision_model")(pixel_values=px).last_hidden_state
                qf = sub(model, "qformer")(query_embeds=sub(model, "query_tokens").expand(1, -1, -1), encoder_hidden_states=vis,
                                           encoder_attention_mask=torch.ones(vis.shape[:-1], dtype=torch.long)).last_hidden_state
                proj = sub(model, "language_projection")(qf)
                dec = torch.tensor([[0]])
                logits = model(pixel_values=px, input_ids=input_ids, attention_mask=attn, decoder_input_ids=dec).logits
                gen = {}
                for key, kw in [("greedy", dict(max_new_tokens=12, num_beams=1)), ("beam3", dict(max_new_tokens=8, num_beams=3))] + extra_gen:
                    out = model.generate(pixel_values=px, input_ids=input_ids, attention_mask=attn, do_sample=False,
                                         eos_token_id=eos, **kw)
                    gen[key] = {"kwargs": kw, "new_tokens": until_eos(out[0].tolist(), eos)}
            if j == 0:
                tensors[f"{n}.pixel_values"] = px.clone().contiguous()
                tensors[f"{n}.vision_last_hidden_state"] = vis.contiguous()
                tensors[f"{n}.qformer_last_hidden_state"] = qf.contiguous()
                tensors[f"{n}.language_projection"] = proj.contiguous()
            tensors[f"{n}.logits"] = logits.contiguous()
            cases.append({"name": n, "image": fn, "prompt": p, "text_input_ids": tids, "model_input_ids": full,
                          "greedy_new_tokens": gen["greedy"]["new_tokens"], "beam3_new_tokens": gen["beam3"]["new_tokens"],
                          "generate": gen})
    model.save_pretrained(md, safe_serialization=True)
    hf_tok.save_pretrained(md); tok.save(os.path.join(md, "tokenizer.json"))
    proc.save_pretrained(md)
    save_file(tensors, os.path.join(d, "expected.safetensors"))
    json.dump({"reference": f"transformers {transformers.__version__}, torch {torch.__version__}, float32, CPU",
               "language_model": "t5", "image_token_id": img_id, "eos_token_id": eos, "vocab_size": V,
               "images": [fn for fn, _ in pil], "prompts": prompts, "cases": cases,
               "note": "T5 new_tokens start with decoder_start_token_id 0"},
              open(os.path.join(d, "expected.json"), "w"), indent=1)
    print("made", name, [c["greedy_new_tokens"] for c in cases], flush=True)


def make_itm(name, seed, images, texts):
    """Retrieval variant: 6 queries, cross-attention in every layer, projections of 24, texts of different lengths."""
    from transformers import Blip2ForImageTextRetrieval
    d = os.path.join(WORK, name); md = os.path.join(d, "model"); os.makedirs(md)
    torch.manual_seed(seed)
    tok = wordpiece_tokenizer(150); V = tok.get_vocab_size()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                     unk_token="[UNK]", mask_token="[MASK]")
    cfg = Blip2Config(vision_config=dict(image_size=224, layer_norm_eps=1e-6, hidden_size=48, intermediate_size=96,
                                         num_hidden_layers=2, num_attention_heads=4, patch_size=14, qkv_bias=True),
                      qformer_config=dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
                                          cross_attention_frequency=1, vocab_size=V, max_position_embeddings=40,
                                          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, use_qformer_text_input=True),
                      num_query_tokens=6, image_text_hidden_size=24)
    model = Blip2ForImageTextRetrieval(cfg).eval().float()
    randomize(model, seed)
    model.save_pretrained(md, safe_serialization=True)
    hf_tok.save_pretrained(md); tok.save(os.path.join(md, "tokenizer.json"))
    proc = image_processor(); proc.save_pretrained(md)
    tensors, cases = {}, []
    for i, spec in enumerate(images):
        fn = f"image{i}.png"
        draw_image(*spec).save(os.path.join(d, fn))
        img = Image.open(os.path.join(d, fn))
        px = proc(images=img, return_tensors="pt")["pixel_values"]
        tensors[f"img{i}.pixel_values"] = px.clone().contiguous()
        for j, t in enumerate(texts):
            enc = hf_tok(t, return_tensors="pt")
            with torch.no_grad():
                itm = model(pixel_values=px, input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                            use_image_text_matching_head=True)
                itc = model(pixel_values=px, input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                            use_image_text_matching_head=False)
            cases.append({"image": i, "text": t, "input_ids": enc["input_ids"][0].tolist(),
                          "itm_logits": itm.logits_per_image[0].tolist(),
                          "itm_match_probability": float(torch.softmax(itm.logits_per_image[0], -1)[1]),
                          "itc_score": float(itc.logits_per_image.reshape(-1)[0])})
            tensors[f"img{i}_t{j}.image_embeds"] = itc.image_embeds.contiguous()
            tensors[f"img{i}_t{j}.text_embeds"] = itc.text_embeds.contiguous()
    save_file(tensors, os.path.join(d, "expected.safetensors"))
    json.dump({"reference": f"transformers {transformers.__version__}, torch {torch.__version__}, float32, CPU",
               "texts": texts, "cases": cases}, open(os.path.join(d, "expected.json"), "w"), indent=1)
    print("made", name, cases[0], flush=True)


EXTRA = [("rep1.3", dict(max_new_tokens=12, num_beams=1, repetition_penalty=1.3)),
         ("min6", dict(max_new_tokens=12, num_beams=1, min_new_tokens=6)),
         ("beam3_lp0.5", dict(max_new_tokens=8, num_beams=3, length_penalty=0.5)),
         ("beam4_es", dict(max_new_tokens=8, num_beams=4, early_stopping=True)),
         ("beam2_never_lp2", dict(max_new_tokens=8, num_beams=2, early_stopping="never", length_penalty=2.0)),
         ("beam3_rep1.5_min3", dict(max_new_tokens=10, num_beams=3, repetition_penalty=1.5, min_new_tokens=3))]
jobs = [
    ("blip2-opt-projio-postln-f16", 4321,
     dict(hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=3, patch_size=16, qkv_bias=False),
     dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=2, intermediate_size=96, cross_attention_frequency=1),
     dict(hidden_size=64, word_embed_proj_dim=32, num_hidden_layers=2, ffn_dim=96, num_attention_heads=4, do_layer_norm_before=False),
     5, [(11, 300, 200, "JPEG"), (12, 120, 160, "L"), (13, 64, 48, "P")],
     [None, "a photo of", "Question: what color is the star? Answer:"], torch.float16, None, EXTRA[:2], False),
    ("blip2-opt-bf16-sharded-eos", 5678,
     dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, patch_size=14, qkv_bias=True),
     dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128, cross_attention_frequency=2),
     dict(hidden_size=64, num_hidden_layers=2, ffn_dim=128, num_attention_heads=4, do_layer_norm_before=True),
     8, [(21, 640, 480, "LA"), (22, 40, 30, "RGBA"), (23, 333, 257, "JPEG")],
     [None, "Question: what color is the circle? Answer:"], torch.bfloat16, "300KB", EXTRA, True),
]
import sys
if "--t5-itm" in sys.argv:
    jobs = []
    for fn, args in [(make_t5, ("blip2-flant5-variant-eos", 777, [(31, 200, 150, "RGB"), (32, 90, 120, "P")],
                                ["Question: what color is the circle on the left of the picture in the middle? Short answer:",
                                 "a photo of"], EXTRA[:2] + EXTRA[3:5])),
                     (make_itm, ("blip2-itm-variant", 888, [(41, 160, 120, "RGB"), (42, 100, 100, "RGBA")],
                                 ["a red circle on the left", "two cats", "a photo of a purple star at the bottom of the picture"]))]:
        try:
            fn(*args)
        except Exception:
            print("FAILED", args[0], traceback.format_exc(), flush=True)
for j in jobs:
    try:
        make(*j)
    except Exception:
        print("FAILED", j[0], traceback.format_exc(), flush=True)
with tarfile.open(os.path.join(OUT, "extra-fixtures.tar.gz"), "w:gz") as t:
    for n in os.listdir(WORK):
        t.add(os.path.join(WORK, n), arcname=n)
print("done", flush=True)
