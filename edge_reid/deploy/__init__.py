"""Deployment: checkpoint -> ONNX -> FP16 / INT8 (Q/DQ) variants -> TensorRT engine.

Precision lives in the ONNX graph (an FP16 graph, or Q/DQ nodes for INT8), so one artifact
serves ONNX Runtime on a CPU and TensorRT 10.x (builder flags) or 11+ (strongly typed).

What each format supports:

| format              | file                  | precision      | runs on                          | dynamic batch | metadata            |
|---------------------|-----------------------|----------------|----------------------------------|---------------|---------------------|
| PyTorch checkpoint  | ``*.pt``              | FP32           | torch backend (CPU/GPU)          | yes           | checkpoint ``meta`` |
| ONNX FP32           | ``model_fp32.onnx``   | FP32           | onnxruntime (CPU/CUDA/TRT EP)    | yes           | ``metadata_props``  |
| ONNX FP16           | ``model_fp16.onnx``   | FP16, FP32 I/O | onnxruntime, TensorRT            | yes           | ``metadata_props``  |
| ONNX INT8 ``trt``   | ``model_int8_trt.onnx`` | S8 Q/DQ sym. | TensorRT (ORT CPU runs it, slowly) | yes         | ``metadata_props``  |
| ONNX INT8 ``cpu``   | ``model_int8_cpu.onnx`` | U8 act./S8 w | onnxruntime CPU (QLinearConv)    | yes           | ``metadata_props``  |
| TensorRT engine     | ``*.engine`` + ``.json`` | from graph  | tensorrt backend, same GPU + TRT | profile       | JSON side file      |
| AOTInductor package | ``model_aoti_{cpu,cuda}_{precision}.pt2`` | FP32 (CPU); FP32/FP16/BF16 (CUDA), FP32 I/O | aoti backend, same device + PyTorch | yes (1..max) | AOTInductor metadata |

``edge-reid build --format onnx|aoti`` picks the format (registry: :mod:`edge_reid.deploy.formats`).
Modules are imported on demand: ``engine_meta`` (engine side files) needs neither torch nor
onnx, so the runtime can use it on a Jetson without PyTorch.
"""

#: The precisions a build can produce, in the order they are built.
PRECISIONS = ("fp32", "fp16", "int8")
