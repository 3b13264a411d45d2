from photoseek.serving.protos import OUTPUTS, generate

generate(force=True)
print("generated", *[str(o) for o in OUTPUTS])
