// Lets the Nn tests name parameters (Param.Name is set by the model builder) without building a model.
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("DistTrain.Nn.Tests")]
