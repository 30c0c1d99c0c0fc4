import subprocess
import sys


def test_gfpgan_imports_after_the_shim():
    code = (
        "from modules.imaging.torchvision_compat import ensure_functional_tensor; ensure_functional_tensor();"
        "import gfpgan, torch;"
        "from torchvision.transforms.functional_tensor import rgb_to_grayscale;"
        "print(rgb_to_grayscale(torch.ones(3, 2, 2)).shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "torch.Size([1, 2, 2])" in out.stdout
