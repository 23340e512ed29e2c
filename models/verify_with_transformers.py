"""Runs the trained scene models with Hugging Face transformers, as a user of transformers would load them.

    python models/verify_with_transformers.py models/blip2-scenes-opt models/blip2-scenes-itm SCENES_DIR > out.json
    python models/verify_with_transformers.py models/blip2-scenes-t5 models/blip2-scenes-itm SCENES_DIR > out-t5.json

SCENES_DIR comes from `java -jar target/blip2-stream.jar scenes --out SCENES_DIR` (PNGs and scenes.jsonl). For each
scene it prints the greedy caption (OPT: from </s>, as the Java side starts; T5: the encoder reads the visual prompt
and "</s>", the decoder starts from its start token), the answers to its questions in the model family's template
(OPT's "Question: {q} Answer:", FlanT5's "Question: {q} Short answer:"), and the ITM probability and ITC score of its
caption, as JSON lines; the last line sums up exact matches against the scenes' truth.
"""
import json
import sys

import torch
from PIL import Image
from transformers import (Blip2ForConditionalGeneration, Blip2ForImageTextRetrieval, BlipImageProcessor,
                          PreTrainedTokenizerFast)

gen_dir, itm_dir, scenes = sys.argv[1:4]
proc = BlipImageProcessor.from_pretrained(gen_dir)
tok = PreTrainedTokenizerFast(tokenizer_file=f"{gen_dir}/tokenizer.json", bos_token="</s>", eos_token="</s>",
                              pad_token="<pad>", unk_token="<unk>")
itm_tok = PreTrainedTokenizerFast(tokenizer_file=f"{itm_dir}/tokenizer.json", bos_token="</s>", eos_token="</s>",
                                  pad_token="<pad>", unk_token="<unk>")  # "</s> text": </s> is the Q-Former's [CLS]
gen = Blip2ForConditionalGeneration.from_pretrained(gen_dir).eval()
itm = Blip2ForImageTextRetrieval.from_pretrained(itm_dir).eval()
q = gen.config.num_query_tokens
image_token = gen.config.image_token_index
t5 = not gen.config.use_decoder_only_language_model
cue = "Short answer:" if t5 else "Answer:"


def generate(px, prompt, n):
    if t5:  # the tokenizer's template ends a text with </s>; the empty prompt is </s> alone
        ids = tok(prompt or "")["input_ids"]
    else:
        ids = tok(prompt)["input_ids"] if prompt else [tok.convert_tokens_to_ids("</s>")]
    full = [image_token] * q + ids
    input_ids = torch.tensor([full])
    with torch.no_grad():
        seq = gen.generate(pixel_values=px, input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                           max_new_tokens=n, do_sample=False, num_beams=1)[0].tolist()
    if t5:  # the decoder's ids, from its start token
        new = seq[1:] if seq and seq[0] == gen.config.text_config.decoder_start_token_id else seq
    else:
        new = seq[len(full):] if seq[:len(full)] == full else seq
    return new, tok.decode(new, skip_special_tokens=True).strip()


rows = [json.loads(line) for line in open(f"{scenes}/scenes.jsonl")]
captions_right = answers_right = answers = 0
for r in rows:
    px = proc(images=Image.open(f"{scenes}/{r['image']}").convert("RGB"), return_tensors="pt")["pixel_values"]
    ids, caption = generate(px, None, 12)
    out = {"image": r["image"], "truth": r["caption"], "caption": caption, "caption_ids": ids, "answers": []}
    captions_right += caption == r["caption"]
    for qa in r["questions"]:
        _, a = generate(px, f"Question: {qa['question']} {cue}", 4)
        out["answers"].append([qa["question"], qa["answer"], a])
        answers += 1
        answers_right += a == qa["answer"]
    text = itm_tok([r["caption"]], return_tensors="pt", padding=True)
    with torch.no_grad():
        m = itm(pixel_values=px, input_ids=text["input_ids"], attention_mask=text["attention_mask"],
                use_image_text_matching_head=True)
        c = itm(pixel_values=px, input_ids=text["input_ids"], attention_mask=text["attention_mask"],
                use_image_text_matching_head=False)
    out["itm_probability"] = torch.softmax(m.logits_per_image, dim=1)[0, 1].item()
    out["itc_score"] = c.logits_per_image[0, 0].item()
    print(json.dumps(out))
print(json.dumps({"scenes": len(rows), "caption_exact_match": captions_right / len(rows),
                  "vqa_accuracy": answers_right / answers}))
