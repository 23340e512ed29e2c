"""Pillow references for the Java image pipeline: sources in many encodings and, for each,
what PIL gives for convert("RGB") and for convert("RGB").resize((224, 224), BICUBIC), saved as PNG
(lossless). Run with Debian's python3-pil (Pillow 9.4) in src/test/resources/images:
    /usr/bin/python3 ../../python/make_pillow_references.py
"""
import random
from PIL import Image, ImageDraw


def scene(seed, w, h):
    rnd = random.Random(seed)
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = ((x * 255) // max(1, w - 1), (y * 255) // max(1, h - 1), (x * 7 + y * 13 + seed) % 256)
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rnd.randrange(max(1, w)), rnd.randrange(max(1, h))
        col = tuple(rnd.randrange(256) for _ in range(3))
        d.ellipse([x0, y0, x0 + w // 3 + 1, y0 + h // 3 + 1], fill=col)
    return img


def alpha(w, h):
    a = Image.new("L", (w, h))
    ap = a.load()
    for y in range(h):
        for x in range(w):
            ap[x, y] = (x * 5 + y * 11) % 256
    return a


sources = {}
sources["rgb_17x13.png"] = scene(1, 17, 13)
sources["rgb_1000x50.png"] = scene(2, 1000, 50)
sources["rgb_225x224.png"] = scene(3, 225, 224)
sources["rgb_224x224.png"] = scene(4, 224, 224)
rgba = scene(5, 300, 200); rgba.putalpha(alpha(300, 200)); sources["rgba_300x200.png"] = rgba
sources["gray_97x131.png"] = scene(6, 97, 131).convert("L")
sources["palette_64x48.png"] = scene(7, 64, 48).convert("P", palette=Image.ADAPTIVE, colors=50)
la = scene(8, 50, 70).convert("L"); la.putalpha(alpha(50, 70)); sources["la_50x70.png"] = la
sources["bilevel_40x30.png"] = scene(9, 40, 30).convert("1")
g16 = Image.new("I;16", (40, 30))
g16.putdata([(x * 997 + y * 31) % 65536 if (x + y) % 3 else (x * 3 + y) for y in range(30) for x in range(40)])
sources["gray16_40x30.png"] = g16
for name, img in sources.items():
    img.save(name)

jpegs = {"q90_420.jpg": dict(quality=90, subsampling=2), "q95_444.jpg": dict(quality=95, subsampling=0),
         "q80_422.jpg": dict(quality=80, subsampling=1), "progressive.jpg": dict(quality=85, progressive=True)}
for name, kw in jpegs.items():
    scene(10 + len(name), 320, 240).save(name, **kw)
scene(20, 150, 100).convert("L").save("gray.jpg", quality=90)
scene(21, 123, 77).save("rgb24.bmp")
frames = [scene(22 + i, 80, 60).convert("P", palette=Image.ADAPTIVE, colors=64) for i in range(3)]
frames[0].save("anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)

names = list(sources) + list(jpegs) + ["gray.jpg", "rgb24.bmp", "anim.gif"]
for n in names:
    im = Image.open(n).convert("RGB")
    im.save(n + ".rgb.png")
    im.resize((224, 224), Image.BICUBIC).save(n + ".bicubic224.png")
im = Image.open("rgba_300x200.png").convert("RGB")
im.resize((100, 80), Image.BILINEAR).save("rgba_300x200.png.bilinear100x80.png")
im.resize((100, 80), Image.LANCZOS).save("rgba_300x200.png.lanczos100x80.png")
im.resize((451, 333), Image.BICUBIC).save("rgba_300x200.png.bicubic451x333.png")
print("\n".join(names))
