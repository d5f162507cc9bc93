// Gaussian-process regression on the unit cube (Rasmussen & Williams 2006, "Gaussian Processes for Machine
// Learning", Algorithm 2.1: Cholesky factor, α = K⁻¹y, predictive mean and variance, log marginal likelihood),
// with the Matérn 5/2 kernel that Snoek, Larochelle & Adams 2012 recommend for hyper-parameter search, and
// expected improvement (Jones, Schonlau & Welch 1998). Small n (a sweep's trials): plain O(n³) in double.
namespace DistTrain.Cli.Sweep;

public sealed class GaussianProcess
{
    readonly double[][] _x;
    readonly double[] _alpha;
    readonly double[,] _l; // lower Cholesky factor of K + σ²I

    /// <summary>Fits y ≈ f(x) with unit signal variance, length scale ℓ and noise variance σ² (y is best standardised first).</summary>
    public GaussianProcess(IReadOnlyList<double[]> x, IReadOnlyList<double> y, double lengthScale, double noise)
    {
        int n = x.Count;
        if (n == 0 || y.Count != n) throw new ArgumentException("A Gaussian process needs as many targets as points, at least one.");
        _x = x.ToArray();
        LengthScale = lengthScale; Noise = noise;
        var k = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++)
                k[i, j] = k[j, i] = Kernel(_x[i], _x[j]) + (i == j ? noise : 0);
        _l = Cholesky(k);
        _alpha = SolveUpper(_l, SolveLower(_l, y.ToArray()));
        double fit = 0, logDet = 0;
        for (int i = 0; i < n; i++) { fit += y[i] * _alpha[i]; logDet += Math.Log(_l[i, i]); }
        LogMarginalLikelihood = -0.5 * fit - logDet - 0.5 * n * Math.Log(2 * Math.PI);
    }

    public double LengthScale { get; }
    public double Noise { get; }
    /// <summary>log p(y | X, ℓ, σ²): how well these settings explain the data (R&W eq. 2.30).</summary>
    public double LogMarginalLikelihood { get; }

    /// <summary>Matérn 5/2: (1 + √5 r/ℓ + 5r²/3ℓ²) exp(−√5 r/ℓ).</summary>
    public double Kernel(double[] a, double[] b)
    {
        double r2 = 0;
        for (int d = 0; d < a.Length; d++) { double t = a[d] - b[d]; r2 += t * t; }
        double s = Math.Sqrt(5 * r2) / LengthScale;
        return (1 + s + s * s / 3) * Math.Exp(-s);
    }

    /// <summary>Predictive mean and variance of the latent f at <paramref name="x"/>.</summary>
    public (double Mean, double Variance) Predict(double[] x)
    {
        int n = _x.Length;
        var ks = new double[n];
        double mean = 0;
        for (int i = 0; i < n; i++) { ks[i] = Kernel(x, _x[i]); mean += ks[i] * _alpha[i]; }
        var v = SolveLower(_l, ks);
        double var = 1;
        for (int i = 0; i < n; i++) var -= v[i] * v[i];
        return (mean, Math.Max(var, 1e-12));
    }

    /// <summary>E[max(best − ξ − f(x), 0)] for minimisation: how much x is expected to improve on <paramref name="best"/>.</summary>
    public double ExpectedImprovement(double[] x, double best, double xi = 0.01)
    {
        var (mu, var) = Predict(x);
        double sd = Math.Sqrt(var);
        double gain = best - xi - mu;
        double z = gain / sd;
        return gain * NormalCdf(z) + sd * NormalPdf(z);
    }

    public static double NormalPdf(double z) => Math.Exp(-0.5 * z * z) / Math.Sqrt(2 * Math.PI);

    /// <summary>Φ(z) = erfc(−z/√2)/2, erfc by the Chebyshev fit of Numerical Recipes (fractional error below 1.2e-7).</summary>
    public static double NormalCdf(double z) => 0.5 * Erfc(-z / Math.Sqrt(2));

    public static double Erfc(double x)
    {
        double z = Math.Abs(x);
        double t = 1 / (1 + 0.5 * z);
        double r = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807
                   + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? r : 2 - r;
    }

    /// <summary>L with L·Lᵀ = A; a tiny diagonal jitter is added if rounding makes A look indefinite.</summary>
    static double[,] Cholesky(double[,] a)
    {
        int n = a.GetLength(0);
        for (double jitter = 0; ; jitter = jitter == 0 ? 1e-10 : jitter * 100)
        {
            var l = new double[n, n];
            bool ok = true;
            for (int j = 0; j < n && ok; j++)
            {
                double d = a[j, j] + jitter;
                for (int k = 0; k < j; k++) d -= l[j, k] * l[j, k];
                if (d <= 0 || !double.IsFinite(d)) { ok = false; break; }
                l[j, j] = Math.Sqrt(d);
                for (int i = j + 1; i < n; i++)
                {
                    double s = a[i, j];
                    for (int k = 0; k < j; k++) s -= l[i, k] * l[j, k];
                    l[i, j] = s / l[j, j];
                }
            }
            if (ok) return l;
            if (jitter > 1) throw new InvalidOperationException("The Gaussian process's kernel matrix is not positive definite, even with jitter.");
        }
    }

    static double[] SolveLower(double[,] l, double[] b)
    {
        int n = b.Length;
        var x = new double[n];
        for (int i = 0; i < n; i++)
        {
            double s = b[i];
            for (int k = 0; k < i; k++) s -= l[i, k] * x[k];
            x[i] = s / l[i, i];
        }
        return x;
    }

    static double[] SolveUpper(double[,] l, double[] b) // solves Lᵀx = b
    {
        int n = b.Length;
        var x = new double[n];
        for (int i = n - 1; i >= 0; i--)
        {
            double s = b[i];
            for (int k = i + 1; k < n; k++) s -= l[k, i] * x[k];
            x[i] = s / l[i, i];
        }
        return x;
    }
}
